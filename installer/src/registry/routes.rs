//! The pull side of the OCI Distribution API, one function per endpoint.
//!
//! Every function maps a parsed request to a [`Response`] or an [`ApiError`] and never
//! touches the socket, so the whole API is testable without a server. Write methods are
//! refused with 405 `UNSUPPORTED` before anything else is looked at.

use super::errors::{ApiError, ErrorCode};
use super::http::{Body, Request, Response};
use super::misses::{Asked, Request as MissRequest};
use super::pagination::{link, paginate, parse_n};
use super::path::{parse_path, split_target, Endpoint, ManifestRef, Query, MAX_TARGET_LEN};
use super::range::ByteRange;
use super::store::{BlobRef, ImageStore};
use super::verify::Deferred;
use ferry_bundle::oci::{LayoutIndex, OCI_INDEX};
use ferry_bundle::reference::{hub_repository, looks_like_host, normalise_host};
use ferry_bundle::Sha256Digest;
use serde::Serialize;
use std::net::IpAddr;

/// Answers one request from an unknown client (tests).
#[cfg(test)]
pub fn handle(store: &ImageStore, req: &Request) -> Response {
    handle_from(store, req, None)
}

/// Answers one request from `client`: a request for a name, tag or digest the bundle
/// lacks is counted in the store's [`MissLog`](super::misses::MissLog).
pub fn handle_from(store: &ImageStore, req: &Request, client: Option<IpAddr>) -> Response {
    match route(store, req, client) {
        Ok(r) => r,
        Err(e) => Response::error(&e),
    }
}

fn route(store: &ImageStore, req: &Request, client: Option<IpAddr>) -> Result<Response, ApiError> {
    if let Some(ext) = &store.extension {
        if req.target.starts_with("/ferry/") && req.method == "GET" {
            return Ok((ext.0)(req).unwrap_or_else(|| Response::json(404, b"{}".to_vec())));
        }
    }
    if req.method != "GET" && req.method != "HEAD" {
        return Err(ApiError::read_only(&req.method));
    }
    if req.target.len() > MAX_TARGET_LEN {
        return Err(ApiError::new(
            414,
            ErrorCode::NameInvalid,
            format!("request target longer than {MAX_TARGET_LEN} bytes"),
        ));
    }
    let (path, query) = split_target(&req.target);
    let query = Query::parse(query)?;
    let endpoint = parse_path(path)?;
    let result = match &endpoint {
        Endpoint::Base => Ok(Response::json(200, b"{}".to_vec())),
        Endpoint::Catalog => catalog(store, &query),
        Endpoint::Manifest { name, reference } => manifest(store, name, &query, reference),
        Endpoint::Blob { name, digest } => blob(store, req, name, &query, digest),
        Endpoint::Tags { name } => tags(store, name, &query),
        Endpoint::Referrers { name, digest } => referrers(store, name, &query, digest),
    };
    if let Err(e) = &result {
        record_miss(store, &endpoint, &query, e, client);
    }
    result
}

/// Counts a request for a name, tag or digest this bundle does not have (a malformed
/// request is no miss: it could not name anything).
fn record_miss(
    store: &ImageStore,
    endpoint: &Endpoint,
    query: &Query,
    e: &ApiError,
    client: Option<IpAddr>,
) {
    if !matches!(
        e.code,
        ErrorCode::NameUnknown | ErrorCode::ManifestUnknown | ErrorCode::BlobUnknown
    ) {
        return;
    }
    let (asked, name, reference) = match endpoint {
        Endpoint::Manifest { name, reference } => (
            Asked::Manifest,
            name,
            Some(match reference {
                ManifestRef::Tag(t) => t.clone(),
                ManifestRef::Digest(d) => d.to_string(),
            }),
        ),
        Endpoint::Blob { name, digest } => (Asked::Blob, name, Some(digest.to_string())),
        Endpoint::Tags { name } => (Asked::Tags, name, None),
        _ => return,
    };
    let (host, repository) = upstream(name, query.ns.as_deref());
    store.misses.record(&MissRequest {
        asked,
        host: host.as_deref(),
        repository: &repository,
        reference: reference.as_deref(),
        error: e.code.as_str(),
        client,
    });
}

/// The upstream host and repository a request names: containerd's `?ns=`, else the
/// path's first component when it is a host (`/v2/quay.io/x/y/…`), else unknown.
fn upstream(name: &str, ns: Option<&str>) -> (Option<String>, String) {
    let host_in_path = name
        .split_once('/')
        .filter(|(first, _)| looks_like_host(first))
        .and_then(|(first, rest)| Some((normalise_host(first).ok()?, rest)));
    match (ns.and_then(|n| normalise_host(n).ok()), host_in_path) {
        (Some(h), _) => (Some(h.clone()), hub_repository(&h, name)),
        (None, Some((h, rest))) => (Some(h.clone()), hub_repository(&h, rest)),
        (None, None) => (None, name.to_string()),
    }
}

fn etag(digest: &Sha256Digest) -> String {
    format!("\"{}\"", digest)
}

fn manifest(
    store: &ImageStore,
    name: &str,
    query: &Query,
    reference: &ManifestRef,
) -> Result<Response, ApiError> {
    let (key, repo) = store.resolve(name, query.ns.as_deref())?;
    let digest = match reference {
        ManifestRef::Tag(tag) => *repo.tags.get(tag).ok_or_else(|| {
            ApiError::manifest_unknown(format!("{}:{tag} is not in this bundle", key.full_name()))
        })?,
        ManifestRef::Digest(d) if repo.manifests.contains(d) => *d,
        ManifestRef::Digest(d) => {
            return Err(ApiError::manifest_unknown(format!(
                "{}@{} is not in this bundle",
                key.full_name(),
                d
            )))
        }
    };
    let m = store
        .manifest(&digest)
        .ok_or_else(|| ApiError::manifest_unknown(format!("manifest {} is not loaded", digest)))?;
    Ok(Response::new(200, Body::Shared(m.bytes.clone()))
        .header("Content-Type", m.media_type.clone())
        .header("Docker-Content-Digest", digest.to_string())
        .header("ETag", etag(&digest)))
}

/// A blob, whole or a range. A file blob not yet verified is verified while it is sent
/// when the request is a full GET, and before anything else otherwise (`super::verify`).
fn blob(
    store: &ImageStore,
    req: &Request,
    name: &str,
    query: &Query,
    digest: &Sha256Digest,
) -> Result<Response, ApiError> {
    let range = req.range.as_deref();
    let (key, repo) = store.resolve(name, query.ns.as_deref())?;
    let found = store.blob(repo, digest).ok_or_else(|| {
        ApiError::blob_unknown(format!(
            "blob {} is not in repository {}",
            digest,
            key.full_name()
        ))
    })?;
    let mut check = None;
    let total = match &found {
        BlobRef::Manifest(m) => m.bytes.len() as u64,
        BlobRef::File(b) => {
            let len = b.location.len;
            let whole = ByteRange::parse(range, len) == ByteRange::Full;
            match b.verdict.known() {
                Some(verdict) => verdict?,
                None if req.method == "GET" && whole && len > 0 => {
                    check = Some(Deferred::new(
                        b.verdict.clone(),
                        *digest,
                        b.location.clone(),
                    ))
                }
                None => b.verdict.check(digest, &b.location)?,
            }
            len
        }
    };
    let (status, start, len) = match ByteRange::parse(range, total) {
        ByteRange::Full => (200, 0, total),
        ByteRange::Partial { start, end } => (206, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            return Ok(Response::error(&ApiError::new(
                416,
                ErrorCode::RangeInvalid,
                format!(
                    "range {:?} is outside blob {} of {total} bytes",
                    range.unwrap_or(""),
                    digest
                ),
            ))
            .header("Content-Range", format!("bytes */{total}")))
        }
    };
    let body = match found {
        BlobRef::Manifest(m) => {
            Body::Bytes(m.bytes[start as usize..(start + len) as usize].to_vec())
        }
        BlobRef::File(b) => {
            Body::open_checked(&b.location.slice(start, len), check).map_err(|e| {
                ApiError::new(
                    500,
                    ErrorCode::BlobUnknown,
                    format!(
                        "blob {} cannot be opened ({}): {e}",
                        digest,
                        b.location.describe()
                    ),
                )
            })?
        }
    };
    let mut resp = Response::new(status, body)
        .header("Content-Type", "application/octet-stream")
        .header("Docker-Content-Digest", digest.to_string())
        .header("Accept-Ranges", "bytes")
        .header("ETag", etag(digest))
        .header("Cache-Control", "max-age=31536000");
    if status == 206 {
        resp = resp.header(
            "Content-Range",
            format!("bytes {start}-{}/{total}", start + len - 1),
        );
    }
    Ok(resp)
}

fn tags(store: &ImageStore, name: &str, query: &Query) -> Result<Response, ApiError> {
    let (_, repo) = store.resolve(name, query.ns.as_deref())?;
    let n = parse_n(query.n.as_deref())?;
    let page = paginate(
        repo.tags.keys().map(String::as_str),
        n,
        query.last.as_deref(),
    );
    #[derive(Serialize)]
    struct TagList<'a> {
        name: &'a str,
        tags: &'a [&'a str],
    }
    let body = serde_json::to_vec(&TagList {
        name,
        tags: &page.items,
    })
    .unwrap_or_default();
    let mut resp = Response::json(200, body);
    if let (Some(n), Some(last)) = (n, page.next_last) {
        let base = format!("/v2/{name}/tags/list");
        resp = resp.header("Link", link(&base, n, last, query.ns.as_deref()));
    }
    Ok(resp)
}

fn catalog(store: &ImageStore, query: &Query) -> Result<Response, ApiError> {
    let n = parse_n(query.n.as_deref())?;
    let mut names: Vec<String> = match &query.ns {
        Some(ns) => {
            let host = normalise_host(ns).map_err(|e| {
                ApiError::name_invalid(format!("ns={ns:?} is not a registry host: {e}"))
            })?;
            store
                .repos
                .keys()
                .filter(|k| k.host == host)
                .map(|k| k.repository.clone())
                .collect()
        }
        None => store.repositories(),
    };
    names.sort();
    let page = paginate(names.iter().map(String::as_str), n, query.last.as_deref());
    #[derive(Serialize)]
    struct Catalog<'a> {
        repositories: &'a [&'a str],
    }
    let body = serde_json::to_vec(&Catalog {
        repositories: &page.items,
    })
    .unwrap_or_default();
    let mut resp = Response::json(200, body);
    if let (Some(n), Some(last)) = (n, page.next_last) {
        resp = resp.header("Link", link("/v2/_catalog", n, last, query.ns.as_deref()));
    }
    Ok(resp)
}

fn referrers(
    store: &ImageStore,
    name: &str,
    query: &Query,
    subject: &Sha256Digest,
) -> Result<Response, ApiError> {
    let (_, repo) = store.resolve(name, query.ns.as_deref())?;
    let filter = query.artifact_type.as_deref().filter(|t| !t.is_empty());
    let referrers = store.referrers(repo, subject, filter);
    let body = serde_json::to_vec(&LayoutIndex::of(referrers.into_iter().cloned().collect()))
        .unwrap_or_default();
    let mut resp = Response::new(200, Body::Bytes(body)).header("Content-Type", OCI_INDEX);
    if filter.is_some() {
        resp = resp.header("OCI-Filters-Applied", "artifactType");
    }
    Ok(resp)
}
