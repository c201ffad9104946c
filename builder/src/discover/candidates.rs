//! Candidates: strings outside pod templates that look like images.
//!
//! Why report them at all: operators pull images that appear nowhere in a pod template
//! (`--executor-image`, `CSI_ATTACHER_IMAGE`, a helper pod spec inside a ConfigMap, the
//! `{repository}/{image}:{version}` fields of a custom resource). An air-gapped site cannot
//! fetch them later, so a person must see them. Why separately: many image-shaped strings are
//! not images (Jenkins `plugin:version` lists, examples inside CRD descriptions), so they are
//! never mixed into the image list.
//!
//! Precision comes from context: a string is reported when its key, env var or flag names an
//! image, when sibling fields compose an image, or — with no context — only when it has the
//! full `registry.host/path:tag` shape. Prose (`description` fields, sentences) is never
//! searched for references.

use super::grammar::{clean, is_full_reference, is_image_like, names_image, names_repository};
use super::podspec::CONTAINER_LISTS;
use super::yaml::{parse_embedded, Node};
use super::{join_index, join_key, Clue, Found, Origin};
use std::collections::HashSet;

/// Keys whose values are documentation or copies of the object, never things to pull.
const SKIPPED_KEYS: &[&str] = &[
    "description",
    "managedFields",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// Embedded documents inside embedded documents stop here.
const MAX_EMBED_DEPTH: usize = 3;

/// Scans `object` (outside the already `consumed` image fields) and adds candidates to `out`.
pub(crate) fn scan(
    object: &Node,
    origin: &Origin,
    prefix: &str,
    consumed: &HashSet<String>,
    out: &mut Vec<Found>,
) {
    let mut w = Walker {
        origin,
        consumed,
        out,
        embed_depth: 0,
    };
    w.node(object, prefix, None, None);
}

struct Walker<'a> {
    origin: &'a Origin,
    consumed: &'a HashSet<String>,
    out: &'a mut Vec<Found>,
    embed_depth: usize,
}

impl Walker<'_> {
    fn emit(&mut self, image: &str, field: &str, container: Option<&str>, clue: Clue) {
        self.out.push(self.origin.found(
            image.to_string(),
            field.to_string(),
            container.map(str::to_string),
            clue,
        ));
    }

    /// Walks any node. `key` is the mapping key (or, for sequence items, the key of the
    /// sequence) the node sits under; `container` the enclosing container's name.
    fn node(&mut self, node: &Node, path: &str, key: Option<&str>, container: Option<&str>) {
        match node {
            Node::Map(entries) => self.map(node, entries, path, key, container),
            Node::Seq(items) => self.seq(items, path, key, container),
            Node::String(s) => self.string(s, path, key, container),
            _ => {}
        }
    }

    fn map(
        &mut self,
        node: &Node,
        entries: &[(String, Node)],
        path: &str,
        key: Option<&str>,
        container: Option<&str>,
    ) {
        let mut handled: Vec<&str> = Vec::new();

        // `{name: SIDECAR_IMAGE, value: ghcr.io/...}`: an env var (or any name/value pair).
        if let (Some(name), Some(value)) = (
            node.get("name").and_then(Node::as_str),
            node.get("value").and_then(Node::as_str),
        ) {
            let field = join_key(path, "value");
            if names_image(name) {
                self.list_values(value, &field, container, Clue::Env(name.to_string()), false);
                handled.push("value");
            } else if names_repository(name) {
                self.list_values(value, &field, container, Clue::Env(name.to_string()), true);
                handled.push("value");
            }
        }

        // `{repository: nvcr.io/nvidia, image: driver, version: 1.0}` and
        // `{registry: r, repository: x, tag: y, digest: z}`: compose like the templates do.
        if let Some((image, used)) = compose(node) {
            self.emit(
                &image,
                &format!("{path}.{{{}}}", used.join(",")),
                container,
                Clue::Composed(used.join(",")),
            );
            handled.extend(used);
        }

        // A container (of a pod spec, embedded or in a custom resource) names its fields.
        let inner_container = match (key, node.get("name").and_then(Node::as_str)) {
            (Some(k), Some(n)) if CONTAINER_LISTS.contains(&k) => Some(n),
            _ => container,
        };

        for (k, v) in entries {
            if handled.contains(&k.as_str()) || SKIPPED_KEYS.contains(&k.as_str()) {
                continue;
            }
            let field = join_key(path, k);
            self.node(v, &field, Some(k), inner_container);
        }
    }

    fn seq(&mut self, items: &[Node], path: &str, key: Option<&str>, container: Option<&str>) {
        // `["--engine-image", "x:1"]`: a flag and its value in separate arguments.
        let mut skip_next = false;
        for (i, item) in items.iter().enumerate() {
            let field = join_index(path, i);
            if std::mem::take(&mut skip_next) {
                continue;
            }
            if let (Some(flag), Some(Node::String(next))) =
                (item.as_str().and_then(flag_name), items.get(i + 1))
            {
                if !item.as_str().unwrap_or_default().contains('=')
                    && names_image(flag)
                    && !next.starts_with('-')
                {
                    let value = clean(next);
                    if is_image_like(value) {
                        self.emit(
                            value,
                            &join_index(path, i + 1),
                            container,
                            Clue::Flag(flag.to_string()),
                        );
                    }
                    skip_next = true;
                    continue;
                }
            }
            self.node(item, &field, key, container);
        }
    }

    fn string(&mut self, s: &str, path: &str, key: Option<&str>, container: Option<&str>) {
        if self.consumed.contains(path) {
            return;
        }
        let value = clean(s);
        if let Some(k) = key {
            if names_image(k) {
                self.list_values(s, path, container, Clue::Key(k.to_string()), false);
                return;
            }
            if names_repository(k) {
                self.list_values(s, path, container, Clue::Key(k.to_string()), true);
                return;
            }
        }
        if s.contains('\n') {
            self.text(s, path, container);
        } else if value.chars().any(char::is_whitespace) {
            self.flags_in_text(value, path, container);
        } else if let Some((flag, v)) = flag_with_value(value) {
            if names_image(flag) && is_image_like(v) {
                self.emit(v, path, container, Clue::Flag(flag.to_string()));
            }
        } else if is_full_reference(value) {
            self.emit(value, path, container, Clue::Grammar);
        }
    }

    /// A value that may hold several references separated by commas or blanks (Trivy's
    /// `SCANNER_TRIVY_DB_REPOSITORY=a,b`). With `need_slash`, bare words are not taken.
    fn list_values(
        &mut self,
        s: &str,
        path: &str,
        container: Option<&str>,
        clue: Clue,
        need_slash: bool,
    ) {
        for part in s.split([',', ' ', '\n', '\t', ';']) {
            let part = clean(part);
            if is_image_like(part) && (!need_slash || part.contains('/')) {
                self.emit(part, path, container, clue.clone());
            }
        }
    }

    /// A multi-line string: an embedded YAML/JSON document (ConfigMap data), or a script.
    fn text(&mut self, s: &str, path: &str, container: Option<&str>) {
        if self.embed_depth < MAX_EMBED_DEPTH {
            if let Some(docs) = parse_embedded(s) {
                self.embed_depth += 1;
                let many = docs.len() > 1;
                for (i, doc) in docs.iter().enumerate() {
                    let inner = if many {
                        format!("{path}#{i}#")
                    } else {
                        format!("{path}#")
                    };
                    self.embedded(doc, &inner, container);
                }
                self.embed_depth -= 1;
                return;
            }
        }
        // Not YAML (a template, a script): `image:` lines and image flags by text.
        for line in s.lines() {
            let t = line.trim().trim_start_matches("- ").trim();
            if let Some(rest) = t.strip_prefix("image:") {
                let v = clean(rest.split(" #").next().unwrap_or(rest));
                if is_image_like(v) {
                    self.emit(v, path, container, Clue::EmbeddedLine);
                }
            }
        }
        self.flags_in_text(s, path, container);
    }

    /// An embedded document: walked like a top-level one. Its own pod templates are only
    /// candidates (nothing deploys a ConfigMap's contents as such).
    fn embedded(&mut self, doc: &Node, prefix: &str, container: Option<&str>) {
        // `prefix` ends with '#': fields inside start right after it.
        let join = |p: &str| format!("{prefix}{p}");
        match doc {
            Node::Map(entries) => {
                for (k, v) in entries {
                    if SKIPPED_KEYS.contains(&k.as_str()) {
                        continue;
                    }
                    self.node(v, &join(&join_key("", k)), Some(k), container);
                }
            }
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.node(item, &join(&format!("[{i}]")), None, container);
                }
            }
            _ => {}
        }
    }

    /// `--x-image=v` / `--x-image v` inside free text (shell scripts, single-string args).
    fn flags_in_text(&mut self, s: &str, path: &str, container: Option<&str>) {
        let tokens: Vec<&str> = s.split_whitespace().collect();
        for (i, tok) in tokens.iter().enumerate() {
            let tok = clean(tok.trim_end_matches(['\\', ';']));
            if let Some((flag, v)) = flag_with_value(tok) {
                if names_image(flag) && is_image_like(clean(v)) {
                    self.emit(clean(v), path, container, Clue::Flag(flag.to_string()));
                }
            } else if let Some(flag) = flag_name(tok) {
                if let Some(next) = tokens.get(i + 1) {
                    let v = clean(next.trim_end_matches(['\\', ';']));
                    if names_image(flag) && !v.starts_with('-') && is_image_like(v) {
                        self.emit(v, path, container, Clue::Flag(flag.to_string()));
                    }
                }
            }
        }
    }
}

/// `--name` (or `-name`) without a value: the flag's name.
fn flag_name(s: &str) -> Option<&str> {
    let name = s.strip_prefix("--").or_else(|| s.strip_prefix('-'))?;
    let name = name.split('=').next().unwrap_or(name);
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'))
    .then_some(name)
}

/// `--name=value`: the flag's name and value.
fn flag_with_value(s: &str) -> Option<(&str, &str)> {
    let (flag, value) = s.split_once('=')?;
    let name = flag_name(flag)?;
    Some((name, value))
}

/// Composes an image from sibling fields the way charts and operators do:
/// `{repository}/{image}:{version}` (NVIDIA ClusterPolicy), `{registry}/{repository}:{tag}`,
/// `{registry}/{image}:{tag}@{digest}` (ingress-nginx values). Returns the image and the
/// fields used.
pub(crate) fn compose(node: &Node) -> Option<(String, Vec<&'static str>)> {
    let text = |k: &str| {
        node.get(k)
            .and_then(Node::scalar_text)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let registry = text("registry");
    let repository = text("repository");
    let image = text("image");
    let mut used: Vec<&'static str> = Vec::new();
    let mut name = match (&registry, &repository, &image) {
        (_, Some(repo), Some(img)) => {
            used.extend(["repository", "image"]);
            format!("{}/{}", repo.trim_end_matches('/'), img)
        }
        (Some(reg), None, Some(img)) => {
            used.extend(["registry", "image"]);
            format!("{}/{}", reg.trim_end_matches('/'), img)
        }
        (_, Some(repo), None) => {
            used.push("repository");
            repo.clone()
        }
        _ => return None,
    };
    if let (Some(reg), Some(_)) = (&registry, &repository) {
        used.insert(0, "registry");
        name = format!("{}/{}", reg.trim_end_matches('/'), name);
    }
    // Only a tag, version or digest makes a bare `repository` an image reference.
    let tag = text("tag")
        .map(|t| ("tag", t))
        .or_else(|| text("version").map(|v| ("version", v)));
    let digest = text("digest");
    if image.is_none() && tag.is_none() && digest.is_none() {
        return None;
    }
    if let Some((field, t)) = tag {
        used.push(field);
        name = format!("{name}:{t}");
    }
    if let Some(d) = digest {
        used.push("digest");
        name = format!("{name}@{d}");
    }
    is_image_like(&name).then_some((name, used))
}

#[cfg(test)]
mod tests {
    use crate::discover::{discover_manifests, Clue};

    fn candidates(text: &str) -> Vec<(String, String, Clue)> {
        discover_manifests(text, "t.yaml")
            .unwrap()
            .candidates
            .into_iter()
            .map(|f| (f.image, f.field, f.clue))
            .collect()
    }

    fn strings(text: &str) -> Vec<String> {
        candidates(text).into_iter().map(|c| c.0).collect()
    }

    #[test]
    fn flags_in_args_and_command() {
        let c = candidates(
            "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: ctl\n        image: ctl:1\n        args: [--configmap, cm, --executor-image, 'quay.io/a/exec:v1', '--helper-image=busybox:1', --image-pull-policy, Always]\n        command: ['sh', '-c', 'run --engine-image=ghcr.io/e/e:2 --x y']\n",
        );
        assert_eq!(
            c,
            vec![
                (
                    "quay.io/a/exec:v1".into(),
                    "spec.template.spec.containers[0].args[3]".into(),
                    Clue::Flag("executor-image".into())
                ),
                (
                    "busybox:1".into(),
                    "spec.template.spec.containers[0].args[4]".into(),
                    Clue::Flag("helper-image".into())
                ),
                (
                    "ghcr.io/e/e:2".into(),
                    "spec.template.spec.containers[0].command[2]".into(),
                    Clue::Flag("engine-image".into())
                ),
            ]
        );
    }

    #[test]
    fn env_vars_naming_images() {
        let c = candidates(
            "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: ctl\n        image: ctl:1\n        env:\n        - {name: SIDECAR_IMAGE, value: 'ghcr.io/dapr/daprd:edge'}\n        - {name: SIDECAR_IMAGE_PULL_POLICY, value: Always}\n        - {name: DB_REPOSITORY, value: 'mirror.gcr.io/a/db,ghcr.io/b/db'}\n        - {name: LOG_LEVEL, value: info}\n",
        );
        let strings: Vec<&str> = c.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            strings,
            [
                "ghcr.io/dapr/daprd:edge",
                "mirror.gcr.io/a/db",
                "ghcr.io/b/db"
            ]
        );
        assert_eq!(c[0].1, "spec.template.spec.containers[0].env[0].value");
        assert_eq!(c[0].2, Clue::Env("SIDECAR_IMAGE".into()));
    }

    #[test]
    fn configmap_embedded_pod_and_lines() {
        let c = candidates(
            "kind: ConfigMap\nmetadata: {name: cfg}\ndata:\n  helperPod.yaml: |-\n    apiVersion: v1\n    kind: Pod\n    spec:\n      containers:\n      - name: helper-pod\n        image: docker.io/library/busybox\n  script.tpl: |\n    {{ broken yaml\n    image: \"agent/x:1\"\n  plugins.txt: |\n    kubernetes:4540.v612369217f87\n    git:5.10.1\n",
        );
        assert_eq!(
            c,
            vec![
                (
                    "docker.io/library/busybox".into(),
                    "data[\"helperPod.yaml\"]#spec.containers[0].image".into(),
                    Clue::Key("image".into())
                ),
                (
                    "agent/x:1".into(),
                    "data[\"script.tpl\"]".into(),
                    Clue::EmbeddedLine
                ),
            ]
        );
    }

    #[test]
    fn composed_custom_resource_fields() {
        let s = strings(
            "kind: ClusterPolicy\nspec:\n  driver:\n    repository: nvcr.io/nvidia\n    image: driver\n    version: '580.1'\n    manager: {repository: nvcr.io/nvidia/cloud-native, image: k8s-driver-manager, version: v0.11.0}\n  vgpuManager: {enabled: false, image: vgpu-manager}\n  other: {registry: quay.io, repository: org/app, tag: v1, digest: 'sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1'}\n  chart: {repository: https://charts.example.com, version: 1.0.0}\n",
        );
        assert_eq!(
            s,
            [
                "nvcr.io/nvidia/driver:580.1",
                "nvcr.io/nvidia/cloud-native/k8s-driver-manager:v0.11.0",
                "vgpu-manager",
                "quay.io/org/app:v1@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1",
            ]
        );
    }

    #[test]
    fn precision_traps() {
        let s = strings(
            "kind: CustomResourceDefinition\nspec:\n  versions:\n  - schema:\n      openAPIV3Schema:\n        properties:\n          image: {type: string, description: 'Example: ghcr.io/kyverno/kyverno:latest'}\n          reference:\n            description: |-\n              Example: ghcr.io/kyverno/kyverno:latest\n              More text.\n---\nkind: ClusterRole\nmetadata: {name: 'kyverno:admission-controller'}\n---\nkind: Secret\ntype: kubernetes.io/tls\n---\nkind: ConfigMap\ndata:\n  endpoint: '10.0.0.1:8080'\n  url: https://ghcr.io/x/y:1\n",
        );
        assert!(s.is_empty(), "{s:?}");
    }

    #[test]
    fn full_references_without_context() {
        let s = strings("kind: Widget\nspec:\n  components:\n  - ghcr.io/org/widget:v2\n  - org/widget:v2\n  - 'ghcr.io/org/untagged'\n");
        assert_eq!(s, ["ghcr.io/org/widget:v2"]);
    }

    #[test]
    fn pod_images_are_not_candidates() {
        let s = strings("kind: Pod\nspec:\n  containers:\n  - {name: a, image: 'ghcr.io/a/b:1'}\n");
        assert!(s.is_empty(), "{s:?}");
    }

    #[test]
    fn custom_resource_image_keys_with_container_names() {
        let d = discover_manifests(
            "kind: Workflow\nspec:\n  templates:\n  - name: t\n    container: {image: 'alpine:3.20'}\n    initContainers:\n    - {name: prep, image: 'busybox:1'}\n",
            "w.yaml",
        )
        .unwrap();
        assert!(d.images.is_empty());
        let c: Vec<(&str, Option<&str>)> = d
            .candidates
            .iter()
            .map(|f| (f.image.as_str(), f.container.as_deref()))
            .collect();
        assert_eq!(c, [("alpine:3.20", None), ("busybox:1", Some("prep"))]);
    }
}
