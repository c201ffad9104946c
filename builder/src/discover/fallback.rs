//! The values fallback: a best guess at a chart's images when no helm binary is available.
//!
//! Why it exists: a first `ferry images` on a machine without helm should still say
//! something useful. Why it is loud: without rendering, images composed in templates
//! (`{{ .Values.global.registry }}/{{ .Values.image.name }}`, tags from appVersion plus a
//! suffix) can come out wrong, and `if`-guarded components cannot be judged. So the result
//! is flagged [`Renderer::ValuesFallback`] and carries a warning, and components switched
//! off in values (`enabled: false`, a false dependency `condition`) go to candidates.
//!
//! Values are merged as helm does it: chart defaults, then each `-f` file, then each
//! `--set`; a subchart sees its parent's section under its name (or alias) and the parent's
//! `global`.

use super::chart::{self, ChartFiles};
use super::grammar::{clean, is_image_like, names_image};
use super::yaml::{parse_stream, Node};
use super::{
    join_index, join_key, AppKind, AppOptions, Clue, DiscoverError, Discovery, Found, Line,
    Renderer,
};

/// The warning every fallback result carries.
pub const FALLBACK_WARNING: &str = "helm was not found: images were GUESSED from values files \
without rendering the chart (values fallback). Images composed in templates may be wrong or \
missing. Install helm (scripts/install-helm.sh) or set FERRY_HELM for exact results.";

pub(crate) fn discover(opts: &AppOptions) -> Result<Discovery, DiscoverError> {
    let chart = match super::classify(&opts.path)? {
        AppKind::ChartArchive => chart::load_archive(&opts.path)?,
        _ => chart::load_dir(&opts.path)?,
    };
    let mut values = chart.values.clone();
    for file in &opts.values {
        let text = std::fs::read_to_string(file).map_err(|e| DiscoverError::Io {
            path: file.clone(),
            source: e,
        })?;
        let label = file.display().to_string();
        let docs = parse_stream(&text).map_err(|e| DiscoverError::Yaml {
            file: label.clone(),
            line: Line(e.line),
            message: e.message,
        })?;
        match docs.into_iter().find_map(|d| d.node) {
            Some(user @ Node::Map(_)) => merge(&mut values, user),
            None => {}
            Some(_) => {
                return Err(DiscoverError::Yaml {
                    file: label,
                    line: Line(None),
                    message: "a values file must hold a mapping".into(),
                })
            }
        }
    }
    for arg in &opts.set {
        apply_set(&mut values, arg)?;
    }

    let mut d = Discovery {
        images: Vec::new(),
        candidates: Vec::new(),
        warnings: vec![format!("{}: {FALLBACK_WARNING}", opts.path.display())],
        rendered_with: Renderer::ValuesFallback,
    };
    walk_chart(&chart, &values, true, &mut d);
    Ok(d)
}

/// Deep-merges `over` into `base`: maps merge key by key, anything else replaces, and a
/// `null` deletes the key (helm's rule for removing a default).
pub(crate) fn merge(base: &mut Node, over: Node) {
    match (base, over) {
        (Node::Map(base_entries), Node::Map(over_entries)) => {
            for (k, v) in over_entries {
                if v == Node::Null {
                    base_entries.retain(|(existing, _)| *existing != k);
                    continue;
                }
                match base_entries.iter_mut().find(|(existing, _)| *existing == k) {
                    Some((_, slot))
                        if matches!(slot, Node::Map(_)) && matches!(v, Node::Map(_)) =>
                    {
                        merge(slot, v)
                    }
                    Some((_, slot)) => *slot = v,
                    None => base_entries.push((k, v)),
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// Splits at `sep` except where escaped with a backslash (helm's `--set a\.b=c`).
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) if n == sep || n == '\\' => out.last_mut().unwrap().push(n),
                Some(n) => {
                    let last = out.last_mut().unwrap();
                    last.push('\\');
                    last.push(n);
                }
                None => out.last_mut().unwrap().push('\\'),
            }
        } else if c == sep {
            out.push(String::new());
        } else {
            out.last_mut().unwrap().push(c);
        }
    }
    out
}

/// Applies one `--set a.b[0].c=v,x=y` argument (helm's syntax, typed like helm: `true`,
/// `false`, `null` and integers are not strings).
pub(crate) fn apply_set(values: &mut Node, arg: &str) -> Result<(), DiscoverError> {
    let bad = |message: &str| DiscoverError::BadSet {
        arg: arg.to_string(),
        message: message.to_string(),
    };
    for pair in split_unescaped(arg, ',') {
        if pair.is_empty() {
            continue;
        }
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| bad("expected key=value"))?;
        let value = match raw {
            "true" => Node::Bool(true),
            "false" => Node::Bool(false),
            "null" => Node::Null,
            v if !v.is_empty() && v.parse::<i64>().is_ok() => Node::Number(v.to_string()),
            v => Node::String(v.to_string()),
        };
        let mut path: Vec<(String, Option<usize>)> = Vec::new();
        for part in split_unescaped(key, '.') {
            let (name, index) = match part.split_once('[') {
                Some((n, rest)) => {
                    let i = rest
                        .strip_suffix(']')
                        .and_then(|i| i.parse::<usize>().ok())
                        .filter(|i| *i < 10_000)
                        .ok_or_else(|| bad("bad list index"))?;
                    (n.to_string(), Some(i))
                }
                None => (part, None),
            };
            if name.is_empty() {
                return Err(bad("empty key"));
            }
            path.push((name, index));
        }
        if path.is_empty() {
            return Err(bad("empty key"));
        }
        set_path(values, &path, value);
    }
    Ok(())
}

fn set_path(node: &mut Node, path: &[(String, Option<usize>)], value: Node) {
    let Some(((name, index), rest)) = path.split_first() else {
        *node = value;
        return;
    };
    if !matches!(node, Node::Map(_)) {
        *node = Node::Map(Vec::new());
    }
    let Node::Map(entries) = node else {
        unreachable!()
    };
    if !entries.iter().any(|(k, _)| k == name) {
        entries.push((name.clone(), Node::Null));
    }
    let slot = &mut entries.iter_mut().find(|(k, _)| k == name).unwrap().1;
    let target = match index {
        Some(i) => {
            if !matches!(slot, Node::Seq(_)) {
                *slot = Node::Seq(Vec::new());
            }
            let Node::Seq(items) = slot else {
                unreachable!()
            };
            while items.len() <= *i {
                items.push(Node::Null);
            }
            &mut items[*i]
        }
        None => slot,
    };
    set_path(target, rest, value);
}

/// True unless a dependency `condition` (`a.enabled,b.enabled`: the first path that holds a
/// boolean decides) is false.
fn condition_holds(values: &Node, condition: Option<&str>) -> bool {
    let Some(cond) = condition else { return true };
    for path in cond.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let keys: Vec<&str> = path.split('.').collect();
        if let Some(b) = values.at(&keys).and_then(as_bool) {
            return b;
        }
    }
    true
}

/// A boolean as helm reads values: YAML 1.1, where unquoted `yes`/`no`/`on`/`off` are
/// booleans too (our parser is YAML 1.2 and keeps them as strings).
fn as_bool(node: &Node) -> Option<bool> {
    match node {
        Node::Bool(b) => Some(*b),
        Node::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// What a chart's values are walked with.
struct Ctx<'a> {
    chart: &'a ChartFiles,
    global: Option<&'a Node>,
}

fn walk_chart(chart: &ChartFiles, values: &Node, enabled: bool, d: &mut Discovery) {
    // Each dependency (by alias, so one chart used twice is walked twice) and each vendored
    // subchart that no dependency names.
    let mut subs: Vec<(String, Option<&str>, &ChartFiles)> = Vec::new();
    for dep in &chart.dependencies {
        if let Some(sub) = chart.subcharts.iter().find(|s| s.name == dep.name) {
            let key = dep.alias.clone().unwrap_or_else(|| dep.name.clone());
            subs.push((key, dep.condition.as_deref(), sub));
        }
    }
    for sub in &chart.subcharts {
        if !chart.dependencies.iter().any(|dep| dep.name == sub.name) {
            subs.push((sub.name.clone(), None, sub));
        }
    }
    let sub_keys: Vec<&str> = subs.iter().map(|(k, _, _)| k.as_str()).collect();

    let ctx = Ctx {
        chart,
        global: values.get("global"),
    };
    if let Node::Map(entries) = values {
        for (k, v) in entries {
            if sub_keys.contains(&k.as_str()) || k == "global" {
                continue;
            }
            walk(v, &join_key("", k), Some(k), &ctx, enabled, d);
        }
    }

    for (key, condition, sub) in subs {
        let mut sub_values = sub.values.clone();
        if let Some(section @ Node::Map(_)) = values.get(&key) {
            merge(&mut sub_values, section.clone());
        }
        if let (Some(global @ Node::Map(_)), Node::Map(entries)) =
            (values.get("global"), &mut sub_values)
        {
            // The parent's globals win over the subchart's own.
            let mut merged = entries
                .iter()
                .find(|(k, _)| k == "global")
                .map(|(_, v)| v.clone())
                .unwrap_or(Node::Map(Vec::new()));
            merge(&mut merged, global.clone());
            Node::insert(entries, "global".to_string(), merged);
        }
        let on = enabled && condition_holds(values, condition);
        walk_chart(sub, &sub_values, on, d);
    }
}

fn emit(d: &mut Discovery, ctx: &Ctx, image: String, field: String, why: String, enabled: bool) {
    let found = Found {
        image,
        file: ctx.chart.values_label.clone(),
        document: 0,
        kind: None,
        namespace: None,
        name: None,
        field,
        container: None,
        hook: None,
        clue: Clue::Values(why),
    };
    if enabled {
        d.images.push(found);
    } else {
        d.candidates.push(found);
    }
}

fn walk(node: &Node, path: &str, key: Option<&str>, ctx: &Ctx, enabled: bool, d: &mut Discovery) {
    match node {
        Node::Map(entries) => {
            let on = enabled && node.get("enabled").and_then(as_bool) != Some(false);
            let mut used: Vec<&str> = Vec::new();
            if let Some((image, fields)) = compose(node, key, ctx) {
                let why = format!("composed from {}", fields.join(", "));
                emit(d, ctx, image, path.to_string(), why, on);
                used = fields;
            }
            for (k, v) in entries {
                if used.contains(&k.as_str()) {
                    continue;
                }
                let field = join_key(path, k);
                match v {
                    Node::String(s) if names_image(k) => {
                        let s = clean(s);
                        if is_image_like(s) {
                            emit(d, ctx, s.to_string(), field, format!("{k} string"), on);
                        }
                    }
                    _ => walk(v, &field, Some(k), ctx, on, d),
                }
            }
        }
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let field = join_index(path, i);
                match (item, key) {
                    (Node::String(s), Some(k)) if names_image(k) => {
                        let s = clean(s);
                        if is_image_like(s) {
                            emit(
                                d,
                                ctx,
                                s.to_string(),
                                field,
                                format!("{k} list item"),
                                enabled,
                            );
                        }
                    }
                    _ => walk(item, &field, key, ctx, enabled, d),
                }
            }
        }
        _ => {}
    }
}

/// Composes `[registry/]repository[/image][:tag][@digest]` from a values map, filling what
/// charts usually fill in templates: `global.imageRegistry`/`global.registry` and
/// `global.tag` for maps under an image key, and the chart's appVersion for a missing tag.
fn compose<'a>(node: &Node, key: Option<&str>, ctx: &Ctx) -> Option<(String, Vec<&'a str>)> {
    let text = |n: &Node, k: &str| {
        n.get(k)
            .and_then(Node::scalar_text)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let under_image_key = key.is_some_and(names_image);
    let global = |k: &str| ctx.global.and_then(|g| text(g, k));
    let mut used: Vec<&'a str> = Vec::new();

    let repository = text(node, "repository");
    let image = text(node, "image");
    let repo = match (&repository, &image) {
        (Some(r), Some(i)) => {
            used.extend(["repository", "image"]);
            format!("{}/{}", r.trim_end_matches('/'), i)
        }
        (Some(r), None) => {
            used.push("repository");
            r.clone()
        }
        (None, Some(i)) if under_image_key || node.get("registry").is_some() => {
            used.push("image");
            i.clone()
        }
        (None, None) if under_image_key => {
            used.push("name");
            text(node, "name")?
        }
        _ => return None,
    };
    // `global.imageRegistry` overrides every image's registry (the Bitnami convention);
    // `global.image.registry` / `global.registry` fill in for maps that name an image
    // without a registry or repository (ingress-nginx, dapr).
    let own_registry = text(node, "registry");
    if own_registry.is_some() {
        used.push("registry");
    }
    let global_at = |path: &[&str]| {
        ctx.global
            .and_then(|g| g.at(path))
            .and_then(Node::scalar_text)
            .filter(|s| !s.trim().is_empty())
    };
    let registry = match global_at(&["imageRegistry"]) {
        Some(r) if under_image_key => Some(r),
        _ if own_registry.is_some() => own_registry,
        _ if under_image_key && repository.is_none() => {
            global_at(&["image", "registry"]).or_else(|| global_at(&["registry"]))
        }
        _ => None,
    };
    let tag = match text(node, "tag")
        .map(|t| ("tag", t))
        .or_else(|| text(node, "version").map(|v| ("version", v)))
    {
        Some((f, t)) => {
            used.push(f);
            Some(t)
        }
        None => {
            // Declared (even empty) tag fields are consumed too.
            for f in ["tag", "version"] {
                if node.get(f).is_some() {
                    used.push(f);
                }
            }
            under_image_key
                .then(|| global("tag"))
                .flatten()
                .or_else(|| ctx.chart.app_version.clone())
        }
    };
    let digest = text(node, "digest");
    // A declared (even empty) digest field is consumed too.
    if node.get("digest").is_some() {
        used.push("digest");
    }
    let mut out = match registry {
        // `repository` sometimes already carries the registry (`docker.io/x/y`).
        Some(r) if !repo.starts_with(&format!("{}/", r.trim_end_matches('/'))) => {
            format!("{}/{repo}", r.trim_end_matches('/'))
        }
        _ => repo,
    };
    let has_tag = out
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    if let (Some(t), false) = (tag, has_tag) {
        out = format!("{out}:{t}");
    }
    if let Some(dg) = digest {
        out = format!("{out}@{dg}");
    }
    is_image_like(&out).then_some((out, used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::{discover_app_with, HelmMode};
    use std::path::{Path, PathBuf};

    fn edge() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/charts/edge")
    }

    fn fallback(path: PathBuf, values: Vec<PathBuf>, set: Vec<String>) -> Discovery {
        let mut o = AppOptions::new(path);
        o.helm = HelmMode::Disabled;
        o.values = values;
        o.set = set;
        discover_app_with(&o).unwrap()
    }

    fn node(text: &str) -> Node {
        parse_stream(text).unwrap().remove(0).node.unwrap()
    }

    #[test]
    fn merge_like_helm() {
        let mut base = node("a: {b: 1, c: 2}\nd: [1, 2]\ne: x\n");
        merge(&mut base, node("a: {b: 9}\nd: [3]\ne: null\nf: y\n"));
        assert_eq!(base, node("a: {b: 9, c: 2}\nd: [3]\nf: y\n"));
    }

    #[test]
    fn set_syntax() {
        let mut v = node("a: {b: 1}\n");
        apply_set(&mut v, "a.c=x,list[1].name=n,flag=false,dotted\\.key=v,n=5").unwrap();
        assert_eq!(
            v,
            node("a: {b: 1, c: x}\nlist: [null, {name: n}]\nflag: false\ndotted.key: v\nn: 5\n")
        );
        assert!(matches!(
            apply_set(&mut v, "novalue"),
            Err(DiscoverError::BadSet { .. })
        ));
        assert!(matches!(
            apply_set(&mut v, "a[x]=1"),
            Err(DiscoverError::BadSet { .. })
        ));
    }

    #[test]
    fn conditions() {
        let v = node("a: {enabled: false}\nb: {enabled: true}\nc: {enabled: off}\n");
        assert!(!condition_holds(&v, Some("c.enabled")));
        assert!(!condition_holds(&v, Some("a.enabled")));
        assert!(condition_holds(&v, Some("missing.enabled,b.enabled")));
        assert!(condition_holds(&v, Some("missing.enabled")));
        assert!(condition_holds(&v, None));
    }

    #[test]
    fn edge_chart_is_guessed_loudly() {
        let d = fallback(edge(), vec![], vec![]);
        assert!(d.is_fallback());
        assert!(
            d.warnings.iter().any(|w| w.contains("GUESSED")),
            "{:?}",
            d.warnings
        );
        let images: Vec<&str> = d.image_set().into_iter().collect();
        assert_eq!(
            images,
            [
                "busybox:1.36",
                "example/cron@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1",
                "example/debug:1",
                "example/migrate:v2",
                "registry.example.com/team/app:1.2.3",
                "registry.example.com/team/worker:0.9.0",
            ]
        );
        // Disabled in values: only candidates.
        let candidates: Vec<&str> = d.candidate_set().into_iter().collect();
        assert_eq!(
            candidates,
            [
                "registry.example.com/team/extra:6.6",
                "registry.example.com/team/sidecar:9.9"
            ]
        );
    }

    #[test]
    fn user_values_and_set_override_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let vf = tmp.path().join("v.yaml");
        std::fs::write(
            &vf,
            "image: {tag: '7.0'}\nsidecar: {enabled: true}\nworker: {image: {name: renamed}}\n",
        )
        .unwrap();
        let d = fallback(edge(), vec![vf], vec!["image.digest=sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1".into(), "extra.enabled=true".into()]);
        let images = d.image_set();
        assert!(images.contains("registry.example.com/team/app:7.0@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1"), "{images:?}");
        assert!(
            images.contains("registry.example.com/team/sidecar:9.9"),
            "{images:?}"
        );
        assert!(
            images.contains("registry.example.com/team/extra:6.6"),
            "{images:?}"
        );
        assert!(
            images.contains("registry.example.com/renamed:0.9.0"),
            "{images:?}"
        );
    }

    #[test]
    fn global_registry_conventions() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("Chart.yaml"),
            "apiVersion: v2\nname: g\nversion: 0.1.0\nappVersion: '3.1'\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("values.yaml"),
            "global: {image: {registry: registry.k8s.io}}\nctl: {image: {image: ingress/ctl, tag: v1}}\nhub: {image: {repository: org/hub}}\n",
        )
        .unwrap();
        let d = fallback(tmp.path().to_path_buf(), vec![], vec![]);
        let images: Vec<&str> = d.image_set().into_iter().collect();
        // `repository` style maps keep their own (implied docker.io) registry.
        assert_eq!(images, ["org/hub:3.1", "registry.k8s.io/ingress/ctl:v1"]);
        let d = fallback(
            tmp.path().to_path_buf(),
            vec![],
            vec!["global.imageRegistry=mirror.local:5000".into()],
        );
        let images: Vec<&str> = d.image_set().into_iter().collect();
        assert_eq!(
            images,
            [
                "mirror.local:5000/ingress/ctl:v1",
                "mirror.local:5000/org/hub:3.1"
            ]
        );
    }

    #[test]
    fn archive_fallback() {
        let tmp = tempfile::tempdir().unwrap();
        let tgz = tmp.path().join("edge-0.1.0.tgz");
        crate::discover::chart::tests::pack(&edge(), "edge", &tgz);
        let d = fallback(tgz, vec![], vec![]);
        assert!(d
            .image_set()
            .contains("registry.example.com/team/app:1.2.3"));
        assert!(d
            .images
            .iter()
            .all(|f| f.file.contains("edge-0.1.0.tgz:edge")));
    }
}
