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
//! full `registry.host/path:tag` shape (as a whole string, as the value of any `--flag`, or
//! as a word of a script or config text). Prose (`description` fields) is never searched.
//!
//! Composition follows what operators do at run time, not only what templates do: sibling
//! fields (`{repository}/{image}:{version}`, `{hub}/{image}:{tag}`) and fields inherited
//! from enclosing maps, the way istio's injector builds its sidecar from `global.hub`,
//! `global.proxy.image` and `global.tag`. Only a real registry host (`hub`, `registry`) and a
//! `tag` are inherited, from any enclosing map or its `global` child; `version` means too many
//! other things to travel. A composed name is reported beside the plain word it was built
//! from, and the bare word (`proxyv2`) is left to verification ([`super::verify`]) to drop.

use super::grammar::{
    clean, is_full_reference, is_image_like, is_pinned, is_registry_prefix, is_tag, names_host,
    names_image, names_repository,
};
use super::podspec::CONTAINER_LISTS;
use super::yaml::{parse_embedded, Node};
use super::{join_index, join_key, Clue, Found, Origin};
use std::collections::HashSet;

/// What enclosing maps say about the images below them: a registry (`hub`, `registry`) and a
/// `tag`, each with the field it came from.
#[derive(Debug, Clone, Default)]
struct Inherited {
    registry: Option<(String, String)>,
    tag: Option<(String, String)>,
}

impl Inherited {
    /// What `node` (a map at `path`) passes on to its children: its own `hub`/`registry` and
    /// `tag`, else those of its `global` child, else what it inherited itself.
    fn below(&self, node: &Node, path: &str) -> Inherited {
        let mut out = self.clone();
        let global = join_key(path, "global");
        let sources = [(node.get("global"), global.as_str()), (Some(node), path)];
        for (map, at) in sources {
            let Some(map) = map else { continue };
            for key in ["hub", "registry"] {
                if let Some(v) = scalar(map, key).filter(|v| is_registry_prefix(v)) {
                    out.registry = Some((v, join_key(at, key)));
                }
            }
            if let Some(v) = scalar(map, "tag").filter(|v| is_tag(v)) {
                out.tag = Some((v, join_key(at, "tag")));
            }
        }
        out
    }
}

/// The trimmed, non-empty text of a scalar under `key`.
fn scalar(node: &Node, key: &str) -> Option<String> {
    node.get(key)
        .and_then(Node::scalar_text)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

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
        inherited: Inherited::default(),
        seen: HashSet::new(),
    };
    w.node(object, prefix, None, None);
}

struct Walker<'a> {
    origin: &'a Origin,
    consumed: &'a HashSet<String>,
    out: &'a mut Vec<Found>,
    embed_depth: usize,
    /// Registry and tag of the enclosing maps (see [`Inherited`]).
    inherited: Inherited,
    /// `(image, field)` already reported: one field found by two rules is reported once,
    /// by the first (the more specific) rule.
    seen: HashSet<(String, String)>,
}

impl Walker<'_> {
    fn emit(&mut self, image: &str, field: &str, container: Option<&str>, clue: Clue) {
        if !self.seen.insert((image.to_string(), field.to_string())) {
            return;
        }
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
                &fields_path(path, &used),
                container,
                Clue::Composed(used.join(",")),
            );
            handled.extend(used);
        }
        if let Some((image, fields)) = self.compose_inherited(node, path) {
            // `global: {hub: docker.io/istio, tag: 1.22, proxy: {image: proxyv2}}`. What the
            // siblings alone make is reported too: it may be pulled as it is.
            let field = join_key(path, "image");
            self.emit(&image, &field, container, Clue::Composed(fields.join(", ")));
        }
        let inherited = self.inherited.below(node, path);
        let outer = std::mem::replace(&mut self.inherited, inherited);

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
        self.inherited = outer;
    }

    /// An `image` without a registry host and/or tag, completed from enclosing maps'
    /// `hub`/`registry` and `tag` (and a sibling `tag`). Returns the image and the fields
    /// it was built from; `None` when nothing was inherited.
    fn compose_inherited(&self, node: &Node, path: &str) -> Option<(String, Vec<String>)> {
        if ["registry", "hub", "repository"]
            .iter()
            .any(|k| scalar(node, k).is_some())
        {
            return None;
        }
        let image = scalar(node, "image").filter(|i| is_image_like(i))?;
        let mut name = image.clone();
        let mut fields = vec![join_key(path, "image")];
        let mut inherited_any = false;
        if !names_host(&image) {
            if let Some((registry, at)) = &self.inherited.registry {
                name = format!("{}/{name}", registry.trim_end_matches('/'));
                fields.insert(0, at.clone());
                inherited_any = true;
            }
        }
        if !is_pinned(&image) {
            let own = scalar(node, "tag")
                .filter(|t| is_tag(t))
                .map(|t| (t, join_key(path, "tag")));
            let tag = match own {
                Some(t) => Some(t),
                None => {
                    inherited_any |= self.inherited.tag.is_some();
                    self.inherited.tag.clone()
                }
            };
            if let Some((tag, at)) = tag {
                name = format!("{name}:{tag}");
                fields.push(at);
            }
        }
        (inherited_any && is_image_like(&name)).then_some((name, fields))
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
                let value = clean(next);
                if !item.as_str().unwrap_or_default().contains('=')
                    && !next.starts_with('-')
                    && (names_image(flag) || is_full_reference(value))
                {
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
        let structured = (value.starts_with('{') && value.ends_with('}'))
            || (value.starts_with('[') && value.ends_with(']'));
        if s.contains('\n') || structured {
            // A script, a config file, or embedded YAML/JSON (one-line JSON too).
            self.text(s, path, container);
        } else if value.chars().any(char::is_whitespace) {
            self.flags_in_text(value, path, container);
            self.references_in_text(value, path, container);
        } else if let Some((flag, v)) = flag_with_value(value) {
            if image_flag(flag, v) {
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
        self.references_in_text(s, path, container);
    }

    /// Full references (`registry.host/path:tag`) among the words of a text: a config file
    /// (`sandbox_image = "registry.k8s.io/pause:3.10"`), a script (`crane pull ghcr.io/…`).
    fn references_in_text(&mut self, s: &str, path: &str, container: Option<&str>) {
        let separators = |c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    '"' | '\''
                        | '`'
                        | ','
                        | ';'
                        | '='
                        | '('
                        | ')'
                        | '['
                        | ']'
                        | '{'
                        | '}'
                        | '<'
                        | '>'
                        | '|'
                )
        };
        for word in s.split(separators) {
            let word = word.trim_end_matches(['.', ':']);
            if is_full_reference(word) {
                self.emit(word, path, container, Clue::Text);
            }
        }
    }

    /// An embedded document: walked like a top-level one (`prefix` ends with `#`, so its
    /// fields are `data["x.yaml"]#spec.image`). Its own pod templates are only candidates
    /// (nothing deploys a ConfigMap's contents as such).
    fn embedded(&mut self, doc: &Node, prefix: &str, container: Option<&str>) {
        self.node(doc, prefix, None, container);
    }

    /// `--x-image=v` / `--x-image v` inside free text (shell scripts, single-string args).
    fn flags_in_text(&mut self, s: &str, path: &str, container: Option<&str>) {
        let tokens: Vec<&str> = s.split_whitespace().collect();
        for (i, tok) in tokens.iter().enumerate() {
            let tok = clean(tok.trim_end_matches(['\\', ';']));
            if let Some((flag, v)) = flag_with_value(tok) {
                if image_flag(flag, clean(v)) {
                    self.emit(clean(v), path, container, Clue::Flag(flag.to_string()));
                }
            } else if let Some(flag) = flag_name(tok) {
                if let Some(next) = tokens.get(i + 1) {
                    let v = clean(next.trim_end_matches(['\\', ';']));
                    if !v.starts_with('-') && image_flag(flag, v) {
                        self.emit(v, path, container, Clue::Flag(flag.to_string()));
                    }
                }
            }
        }
    }
}

/// `spec.driver.{repository,image,version}`: the fields an image was composed from.
fn fields_path(path: &str, fields: &[&str]) -> String {
    let dot = if path.is_empty() || path.ends_with('#') {
        ""
    } else {
        "."
    };
    format!("{path}{dot}{{{}}}", fields.join(","))
}

/// A flag's value is an image when the flag says so (`--helper-image=busybox`), or, whatever
/// the flag, when the value names a registry host and a tag or digest
/// (`--prometheus-config-reloader=quay.io/prometheus-operator/prometheus-config-reloader:v0.75.0`).
fn image_flag(flag: &str, value: &str) -> bool {
    (names_image(flag) && is_image_like(value)) || is_full_reference(value)
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
/// `{registry}/{image}:{tag}@{digest}` (ingress-nginx values), `{hub}/{image}:{tag}` (istio
/// component overrides), `{registry}/{name}:{tag}`, `{image}:{tag}`. Returns the image and
/// the fields used.
pub(crate) fn compose(node: &Node) -> Option<(String, Vec<&'static str>)> {
    let (registry_key, registry) = match scalar(node, "registry") {
        Some(r) => ("registry", Some(r)),
        None => ("hub", scalar(node, "hub")),
    };
    let repository = scalar(node, "repository");
    let (image_key, image) = match scalar(node, "image") {
        Some(i) => ("image", Some(i)),
        // `name` is everywhere; it names an image only beside a registry.
        None if registry.is_some() && repository.is_none() => ("name", scalar(node, "name")),
        None => ("image", None),
    };
    let mut used: Vec<&'static str> = Vec::new();
    let mut name = match (&registry, &repository, &image) {
        (_, Some(repo), Some(img)) => {
            used.extend(["repository", image_key]);
            format!("{}/{}", repo.trim_end_matches('/'), img)
        }
        (Some(reg), None, Some(img)) => {
            used.extend([registry_key, image_key]);
            format!("{}/{}", reg.trim_end_matches('/'), img)
        }
        (_, Some(repo), None) => {
            used.push("repository");
            repo.clone()
        }
        (None, None, Some(img)) => {
            used.push(image_key);
            img.clone()
        }
        _ => return None,
    };
    if let (Some(reg), Some(_)) = (&registry, &repository) {
        used.insert(0, registry_key);
        name = format!("{}/{}", reg.trim_end_matches('/'), name);
    }
    // Only a tag, version or digest makes a bare `repository` (or a lone `image`) a
    // composition; a name that already has its tag keeps it.
    let tag = scalar(node, "tag")
        .map(|t| ("tag", t))
        .or_else(|| scalar(node, "version").map(|v| ("version", v)))
        .filter(|_| !is_pinned(&name));
    let digest = scalar(node, "digest").filter(|_| !name.contains('@'));
    let lone_image = registry.is_none() && repository.is_none();
    if (image.is_none() || lone_image) && tag.is_none() && digest.is_none() {
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

    #[test]
    fn any_flag_whose_value_names_a_registry_and_a_tag() {
        let c = candidates(
            "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: op\n        image: op:1\n        args:\n        - --prometheus-config-reloader=quay.io/prometheus-operator/prometheus-config-reloader:v0.75.0\n        - --reloader\n        - ghcr.io/acme/reloader:2\n        - --jaeger=jaeger.observability.svc:14268/api/traces\n        - --publish-service=ingress/controller\n        - --kubelet-service=kube-system/kubelet\n        command: [sh, -c, 'exec op --sidecar=registry.example.com:5000/team/side:3 --log=info']\n",
        );
        assert_eq!(
            c,
            vec![
                (
                    "quay.io/prometheus-operator/prometheus-config-reloader:v0.75.0".into(),
                    "spec.template.spec.containers[0].args[0]".into(),
                    Clue::Flag("prometheus-config-reloader".into())
                ),
                (
                    "ghcr.io/acme/reloader:2".into(),
                    "spec.template.spec.containers[0].args[2]".into(),
                    Clue::Flag("reloader".into())
                ),
                (
                    "registry.example.com:5000/team/side:3".into(),
                    "spec.template.spec.containers[0].command[2]".into(),
                    Clue::Flag("sidecar".into())
                ),
            ]
        );
    }

    #[test]
    fn references_inside_config_files_and_scripts() {
        let c = candidates(
            "kind: ConfigMap\nmetadata: {name: cfg}\ndata:\n  config.toml: |\n    [plugins.cri]\n    sandbox_image = \"registry.k8s.io/pause:3.10\"\n  mirror.sh: |\n    #!/bin/sh\n    crane copy ghcr.io/acme/tool:1.2 \"$TARGET\".\n    echo see https://ghcr.io/acme/docs:1 or ghcr.io/acme/untagged\n  single: 'run ghcr.io/acme/one:5; done'\n",
        );
        assert_eq!(
            c,
            vec![
                (
                    "registry.k8s.io/pause:3.10".into(),
                    "data[\"config.toml\"]".into(),
                    Clue::Text
                ),
                (
                    "ghcr.io/acme/tool:1.2".into(),
                    "data[\"mirror.sh\"]".into(),
                    Clue::Text
                ),
                (
                    "ghcr.io/acme/one:5".into(),
                    "data.single".into(),
                    Clue::Text
                ),
            ]
        );
    }

    #[test]
    fn custom_resource_fields_named_image() {
        let s = strings(
            "kind: Prometheus\nspec:\n  image: quay.io/prometheus/prometheus:v2.54.1\n  version: v2.54.1\n  configReloaderImage: 'quay.io/prometheus-operator/prometheus-config-reloader:v0.75.0'\n  thanos: {baseImage: quay.io/thanos/thanos, imagePullPolicy: Always}\n",
        );
        assert_eq!(
            s,
            [
                "quay.io/prometheus/prometheus:v2.54.1",
                "quay.io/prometheus-operator/prometheus-config-reloader:v0.75.0",
                "quay.io/thanos/thanos",
            ]
        );
    }

    #[test]
    fn composed_from_siblings_parents_and_global() {
        // istio: the injector builds its sidecar from `global.hub`, `global.proxy.image` and
        // `global.tag` (here as the pretty JSON of its values ConfigMap); a component may
        // override hub and tag beside its own image.
        let c = candidates(
            "kind: ConfigMap\nmetadata: {name: istio-sidecar-injector}\ndata:\n  values: |-\n    {\n      \"global\": {\"hub\": \"docker.io/istio\", \"tag\": 1.22, \"proxy\": {\"image\": \"proxyv2\"}},\n      \"pilot\": {\"hub\": \"\", \"tag\": \"\", \"image\": \"pilot\"},\n      \"cni\": {\"hub\": \"gcr.io/istio-release\", \"image\": \"install-cni\", \"tag\": \"1.22.1\"}\n    }\n---\nkind: Widget\nspec:\n  registry: quay.io\n  tag: v3\n  agent: {image: acme/agent}\n  fixed: {image: 'ghcr.io/acme/fixed:1', tag: v9}\n  named: {registry: ghcr.io, name: acme/named, tag: '7'}\n  lone: {image: acme/lone, tag: '4'}\n",
        );
        let got: Vec<(&str, &str)> = c.iter().map(|c| (c.0.as_str(), c.1.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    "docker.io/istio/proxyv2:1.22",
                    "data.values#global.proxy.image"
                ),
                ("proxyv2", "data.values#global.proxy.image"),
                ("docker.io/istio/pilot:1.22", "data.values#pilot.image"),
                ("pilot", "data.values#pilot.image"),
                (
                    "gcr.io/istio-release/install-cni:1.22.1",
                    "data.values#cni.{hub,image,tag}"
                ),
                ("quay.io/acme/agent:v3", "spec.agent.image"),
                ("acme/agent", "spec.agent.image"),
                ("ghcr.io/acme/fixed:1", "spec.fixed.image"),
                ("ghcr.io/acme/named:7", "spec.named.{registry,name,tag}"),
                ("acme/lone:4", "spec.lone.{image,tag}"),
                ("quay.io/acme/lone:4", "spec.lone.image"),
            ]
        );
        assert_eq!(
            c[0].2,
            Clue::Composed(
                "data.values#global.hub, data.values#global.proxy.image, data.values#global.tag"
                    .into()
            )
        );
    }

    #[test]
    fn inherited_values_do_not_leak_into_unrelated_maps() {
        // A CR's `version` is its application's version, not a tag for every image below;
        // a `registry` that is no host is not a registry.
        let s = strings(
            "kind: Widget\nspec:\n  version: '3.2'\n  registry: internal\n  sidecar: {image: busybox}\n",
        );
        assert_eq!(s, ["busybox"]);
    }
}
