//! Platform selection in an index: which per-platform manifests a pull keeps.
//!
//! What a manifest or index *is* (media types, descriptors, the union parser, schema1
//! refusal) is the bundle crate's OCI model ([`ferry_bundle::oci`]), shared with the
//! installer's registry; this module only decides, for the platforms a build asks for,
//! which entries of an index to follow.

use ferry_bundle::oci::{Descriptor, Platform};

/// Picks, for each wanted platform, the first index entry that matches it (index order is
/// the publisher's preference, as in containerd). Entries without a platform, such as
/// BuildKit's attestation manifests (`unknown/unknown`), never match. Returns the wanted
/// platform that has no match as `Err`.
pub fn select<'a>(
    entries: &'a [Descriptor],
    wanted: &[Platform],
) -> Result<Vec<(Platform, &'a Descriptor)>, Platform> {
    let mut out: Vec<(Platform, &Descriptor)> = Vec::new();
    for w in wanted {
        let found = entries
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| w.matches(p)))
            .ok_or_else(|| w.clone())?;
        let plat = found.platform.clone().unwrap_or_else(|| w.clone());
        if !out.iter().any(|(_, d)| d.digest == found.digest) {
            out.push((plat, found));
        }
    }
    Ok(out)
}

/// `linux/amd64, linux/arm64/v8` — what an index offers, for error messages.
pub fn offered(entries: &[Descriptor]) -> String {
    let v: Vec<String> = entries
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(Platform::to_string)
        .filter(|p| p != "unknown/unknown")
        .collect();
    if v.is_empty() {
        "no platforms".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_bundle::oci::{parse_manifest, DOCKER_LIST, DOCKER_MANIFEST, OCI_MANIFEST};

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn index() -> Vec<Descriptor> {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
              {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D1}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D2}","size":2,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D3}","size":3,"platform":{{"os":"unknown","architecture":"unknown"}}}}
            ]}}"#
        );
        let (m, doc) = parse_manifest(json.as_bytes(), None).unwrap();
        assert_eq!(m, DOCKER_LIST);
        doc.children().to_vec()
    }

    #[test]
    fn selects_platforms_in_request_order() {
        let i = index();
        let want: Vec<Platform> = vec![
            "linux/arm64".parse().unwrap(),
            "linux/amd64".parse().unwrap(),
        ];
        let sel = select(&i, &want).unwrap();
        assert_eq!(sel.len(), 2);
        assert_eq!(sel[0].0.to_string(), "linux/arm64/v8");
        assert_eq!(sel[0].1.digest.to_string(), D2);
        assert_eq!(sel[1].1.digest.to_string(), D1);
        let missing = select(&i, &["linux/s390x".parse().unwrap()]).unwrap_err();
        assert_eq!(missing.to_string(), "linux/s390x");
        assert_eq!(offered(&i), "linux/amd64, linux/arm64/v8");
        // The same platform asked twice is kept once.
        let twice = select(
            &i,
            &[
                "linux/amd64".parse().unwrap(),
                "linux/amd64".parse().unwrap(),
            ],
        );
        assert_eq!(twice.unwrap().len(), 1);
    }
}
