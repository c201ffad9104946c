//! Images of workload pod templates: the only strings discovery calls images outright.
//!
//! Why by kind and fixed path: Kubernetes itself only starts containers from these pod
//! specs, so an `image` there will be pulled; anything else is a guess (see `candidates`).
//! `*List` documents are expanded first because `kubectl get -o yaml` and some installers
//! wrap everything in a `List`.

use super::yaml::Node;
use super::{join_index, join_key, Clue, Found, Origin};
use std::collections::HashSet;

/// Where each workload kind keeps its pod spec.
const POD_SPEC_PATHS: &[(&str, &[&str])] = &[
    ("Pod", &["spec"]),
    ("PodTemplate", &["template", "spec"]),
    ("Deployment", &["spec", "template", "spec"]),
    ("StatefulSet", &["spec", "template", "spec"]),
    ("DaemonSet", &["spec", "template", "spec"]),
    ("ReplicaSet", &["spec", "template", "spec"]),
    ("ReplicationController", &["spec", "template", "spec"]),
    ("Job", &["spec", "template", "spec"]),
    (
        "CronJob",
        &["spec", "jobTemplate", "spec", "template", "spec"],
    ),
];

/// The container lists of a pod spec.
pub(crate) const CONTAINER_LISTS: &[&str] =
    &["containers", "initContainers", "ephemeralContainers"];

/// Deeper `List` nesting than this is not a real manifest.
const MAX_LIST_DEPTH: usize = 8;

/// The objects of a document with their field-path prefix: the document itself, or the
/// items of a `kind: List` / `kind: *List` document (recursively).
pub(crate) fn objects(node: &Node) -> Vec<(String, &Node)> {
    let mut out = Vec::new();
    expand(node, String::new(), 0, &mut out);
    out
}

fn expand<'a>(node: &'a Node, prefix: String, depth: usize, out: &mut Vec<(String, &'a Node)>) {
    let is_list = node
        .get("kind")
        .and_then(Node::as_str)
        .is_some_and(|k| k.ends_with("List"));
    match node.get("items").and_then(Node::as_seq) {
        Some(items) if is_list && depth < MAX_LIST_DEPTH => {
            let base = join_key(&prefix, "items");
            for (i, item) in items.iter().enumerate() {
                expand(item, join_index(&base, i), depth + 1, out);
            }
        }
        _ => out.push((prefix, node)),
    }
}

/// The pod spec path of a kind, if it is a workload kind.
pub(crate) fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    POD_SPEC_PATHS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, p)| *p)
}

/// Adds the images of `object`'s pod spec to `out`, and the field path of each to
/// `consumed` (so that candidate scanning does not report them again).
pub(crate) fn pod_images(
    object: &Node,
    origin: &Origin,
    prefix: &str,
    out: &mut Vec<Found>,
    consumed: &mut HashSet<String>,
    warnings: &mut Vec<String>,
) {
    let Some(path) = origin.kind.as_deref().and_then(pod_spec_path) else {
        return;
    };
    let Some(spec) = object.at(path) else { return };
    let spec_path = path.iter().fold(prefix.to_string(), |p, k| join_key(&p, k));
    for list in CONTAINER_LISTS {
        let Some(containers) = spec.get(list).and_then(Node::as_seq) else {
            continue;
        };
        let list_path = join_key(&spec_path, list);
        for (i, container) in containers.iter().enumerate() {
            let field = join_key(&join_index(&list_path, i), "image");
            let name = container.get("name").and_then(Node::scalar_text);
            match container.get("image").and_then(Node::scalar_text) {
                Some(image) if !image.trim().is_empty() => {
                    consumed.insert(field.clone());
                    out.push(origin.found(image, field, name, Clue::PodTemplate));
                }
                _ => warnings.push(format!(
                    "{}: {} {}: {field}: container {} has no image",
                    origin.file,
                    origin.kind.as_deref().unwrap_or("?"),
                    origin.name.as_deref().unwrap_or("?"),
                    name.as_deref().unwrap_or("?"),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::discover::discover_manifests;

    fn images(text: &str) -> Vec<(String, String, Option<String>)> {
        discover_manifests(text, "t.yaml")
            .unwrap()
            .images
            .into_iter()
            .map(|f| (f.image, f.field, f.container))
            .collect()
    }

    #[test]
    fn every_workload_kind() {
        let tpl = "template:\n    spec:\n      containers:\n      - {name: c, image: IMG}\n";
        let mut text = String::new();
        for kind in [
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "ReplicationController",
            "Job",
        ] {
            text += &format!(
                "---\nkind: {kind}\nspec:\n  {}",
                tpl.replace("IMG", &kind.to_lowercase())
            );
        }
        text += "---\nkind: Pod\nspec:\n  containers:\n  - {name: c, image: pod}\n";
        text += "---\nkind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n          - {name: c, image: cron}\n";
        let found = images(&text);
        let names: Vec<&str> = found.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "deployment",
                "statefulset",
                "daemonset",
                "replicaset",
                "replicationcontroller",
                "job",
                "pod",
                "cron"
            ]
        );
        assert_eq!(
            found[7].1,
            "spec.jobTemplate.spec.template.spec.containers[0].image"
        );
    }

    #[test]
    fn init_and_ephemeral_containers() {
        let found = images(
            "kind: Pod\nspec:\n  initContainers:\n  - {name: i, image: init:1}\n  containers:\n  - {name: m, image: main:1}\n  ephemeralContainers:\n  - {name: d, image: debug:1}\n",
        );
        assert_eq!(
            found,
            vec![
                (
                    "main:1".into(),
                    "spec.containers[0].image".into(),
                    Some("m".into())
                ),
                (
                    "init:1".into(),
                    "spec.initContainers[0].image".into(),
                    Some("i".into())
                ),
                (
                    "debug:1".into(),
                    "spec.ephemeralContainers[0].image".into(),
                    Some("d".into())
                ),
            ]
        );
    }

    #[test]
    fn lists_are_expanded() {
        let d = discover_manifests(
            "apiVersion: v1\nkind: List\nitems:\n- kind: ConfigMap\n  metadata: {name: cm}\n- kind: Deployment\n  metadata: {name: web, namespace: prod, annotations: {helm.sh/hook: pre-install}}\n  spec:\n    template:\n      spec:\n        containers:\n        - {name: c, image: 'nginx@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1'}\n- kind: PodList\n  items:\n  - kind: Pod\n    spec: {containers: [{name: p, image: inner:2}]}\n",
            "list.yaml",
        )
        .unwrap();
        assert_eq!(d.images.len(), 2);
        let f = &d.images[0];
        assert_eq!(
            f.image,
            "nginx@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1"
        );
        assert_eq!(f.field, "items[1].spec.template.spec.containers[0].image");
        assert_eq!(f.kind.as_deref(), Some("Deployment"));
        assert_eq!(f.namespace.as_deref(), Some("prod"));
        assert_eq!(f.name.as_deref(), Some("web"));
        assert_eq!(f.hook.as_deref(), Some("pre-install"));
        assert_eq!(f.file, "list.yaml");
        assert_eq!(f.document, 0);
        assert_eq!(
            d.images[1].field,
            "items[2].items[0].spec.containers[0].image"
        );
    }

    #[test]
    fn images_exactly_as_written() {
        let found = images("kind: Pod\nspec:\n  containers:\n  - {name: a, image: nginx}\n  - {name: b, image: 'docker.io/library/nginx:1.27'}\n  - {name: c, image: \"reg:5000/x:1@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1\"}\n");
        let names: Vec<&str> = found.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "nginx",
                "docker.io/library/nginx:1.27",
                "reg:5000/x:1@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1"
            ]
        );
    }

    #[test]
    fn non_workloads_and_missing_images() {
        let d = discover_manifests(
            "kind: ConfigMap\ndata: {image: x:1}\n---\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: noimage\n",
            "t.yaml",
        )
        .unwrap();
        assert!(d.images.is_empty());
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert!(d.warnings[0].contains("noimage"));
        assert_eq!(d.images.len(), 0);
        assert_eq!(d.candidate_set().into_iter().collect::<Vec<_>>(), ["x:1"]);
    }

    #[test]
    fn document_index_counts_every_document() {
        let d = discover_manifests(
            "kind: Service\n---\n---\nkind: Pod\nspec: {containers: [{name: a, image: a}]}\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(d.images[0].document, 2);
    }
}
