//! `n`/`last` pagination of tag and catalog lists (OCI Distribution spec, "Listing Tags").
//!
//! Lists are served in lexical order. `last` skips every entry up to and including it;
//! `n` caps the page. When entries remain, the response carries
//! `Link: <…?n=<n>&last=<last entry>>; rel="next"`, which clients follow verbatim.

use super::errors::{ApiError, ErrorCode};
use super::names::percent_encode;

#[derive(Debug, PartialEq, Eq)]
pub struct Page<'a> {
    pub items: Vec<&'a str>,
    /// The `last` of the next page, when there is one.
    pub next_last: Option<&'a str>,
}

/// Parses the `n` query parameter.
pub fn parse_n(n: Option<&str>) -> Result<Option<usize>, ApiError> {
    match n {
        None => Ok(None),
        Some(s) => s
            .parse::<u64>()
            .map(|v| Some(usize::try_from(v).unwrap_or(usize::MAX)))
            .map_err(|_| {
                ApiError::new(
                    400,
                    ErrorCode::PaginationNumberInvalid,
                    format!("n={s:?} is not a non-negative integer"),
                )
            }),
    }
}

/// One page of `sorted` (which must be in ascending order).
pub fn paginate<'a>(
    sorted: impl IntoIterator<Item = &'a str>,
    n: Option<usize>,
    last: Option<&str>,
) -> Page<'a> {
    let mut rest = sorted
        .into_iter()
        .skip_while(|s| last.is_some_and(|l| *s <= l))
        .peekable();
    let Some(n) = n else {
        return Page {
            items: rest.collect(),
            next_last: None,
        };
    };
    let items: Vec<&str> = rest.by_ref().take(n).collect();
    let next_last = match (rest.peek(), items.last()) {
        (Some(_), Some(l)) => Some(*l),
        _ => None,
    };
    Page { items, next_last }
}

/// The `Link` header pointing at the next page.
pub fn link(base_path: &str, n: usize, last: &str, ns: Option<&str>) -> String {
    let mut url = format!("{base_path}?n={n}&last={}", percent_encode(last));
    if let Some(ns) = ns {
        url.push_str("&ns=");
        url.push_str(&percent_encode(ns));
    }
    format!("<{url}>; rel=\"next\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAGS: [&str; 5] = ["1", "1.1", "2", "latest", "v3"];

    #[test]
    fn pages_walk_the_whole_list() {
        let p = paginate(TAGS, Some(2), None);
        assert_eq!(p.items, ["1", "1.1"]);
        assert_eq!(p.next_last, Some("1.1"));
        let p = paginate(TAGS, Some(2), p.next_last);
        assert_eq!(p.items, ["2", "latest"]);
        let p = paginate(TAGS, Some(2), p.next_last);
        assert_eq!(p.items, ["v3"]);
        assert_eq!(p.next_last, None);
    }

    #[test]
    fn edges() {
        assert_eq!(paginate(TAGS, None, None).items.len(), 5);
        assert_eq!(paginate(TAGS, Some(5), None).next_last, None);
        assert_eq!(paginate(TAGS, Some(0), None).items, Vec::<&str>::new());
        assert_eq!(paginate(TAGS, None, Some("2")).items, ["latest", "v3"]);
        // `last` need not be an existing entry.
        assert_eq!(paginate(TAGS, Some(1), Some("10")).items, ["2"]);
        assert_eq!(paginate(TAGS, None, Some("zzz")).items, Vec::<&str>::new());
    }

    #[test]
    fn n_must_be_a_number() {
        assert_eq!(parse_n(Some("10")).unwrap(), Some(10));
        assert_eq!(parse_n(None).unwrap(), None);
        for bad in ["-1", "x", "", "1.5"] {
            assert_eq!(
                parse_n(Some(bad)).unwrap_err().code,
                ErrorCode::PaginationNumberInvalid
            );
        }
    }

    #[test]
    fn link_header() {
        assert_eq!(
            link("/v2/library/app/tags/list", 2, "1.1", Some("docker.io")),
            "</v2/library/app/tags/list?n=2&last=1.1&ns=docker.io>; rel=\"next\""
        );
    }
}
