//! A strict walk over the payload tar's headers, without reading entry data.
//!
//! Hand-written rather than the `tar` crate's reader because hostile input is the point:
//! every header's checksum is checked, long-name and pax records are size-capped before
//! they are read into memory, and any entry type other than a regular file or a
//! directory (symlinks, hard links, devices, fifos) is refused with its name, so nothing
//! later can be tricked into writing through a link.

use crate::error::{BundleError, Result};
use crate::paths::{check_entry_path, MAX_PATH_LEN};
use crate::subfile::SubFile;
use std::io::{Read, Seek, SeekFrom};

const BLOCK: u64 = 512;
/// Largest pax extended header accepted; real ones are a few hundred bytes.
const MAX_PAX: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TarKind {
    File,
    Dir,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub path: String,
    pub kind: TarKind,
    pub size: u64,
    /// Offset of the first data byte within the payload.
    pub data_offset: u64,
    pub mode: u32,
}

/// `size` rounded up to whole tar blocks (for sizes the writer produces itself).
pub fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK) * BLOCK
}

/// Where the padded data of an entry starting at `data_offset` ends, if it ends within
/// the `total` bytes of the payload. The size comes from a hostile header: it is first
/// bounded by the bytes that remain, so rounding it up cannot overflow (a size near
/// `u64::MAX` once wrapped to 0 here and let a crafted entry pass as empty).
fn padded_end(data_offset: u64, size: u64, total: u64) -> Option<u64> {
    let remaining = total.checked_sub(data_offset)?;
    if size > remaining {
        return None;
    }
    let end = data_offset.checked_add(size.checked_next_multiple_of(BLOCK)?)?;
    (end <= total).then_some(end)
}

/// Walks every header of the tar in `payload`. Fails on the first bad header, naming it.
pub fn scan(payload: &mut SubFile) -> Result<Vec<TarEntry>> {
    let total = payload.len();
    let mut pos = 0u64;
    let mut out = Vec::new();
    let mut long_name: Option<String> = None;
    let mut pax_path: Option<String> = None;
    let mut pax_size: Option<u64> = None;
    loop {
        if pos + BLOCK > total {
            return Err(BundleError::entry(
                format!("tar header at payload byte {pos}"),
                "payload ends before the tar end-of-archive marker (truncated)",
            ));
        }
        let mut block = [0u8; 512];
        payload.seek(SeekFrom::Start(pos)).map_err(io_err(pos))?;
        payload.read_exact(&mut block).map_err(io_err(pos))?;
        if block.iter().all(|&b| b == 0) {
            return Ok(out);
        }
        let header = tar::Header::from_byte_slice(&block);
        let where_ = || {
            let name = String::from_utf8_lossy(&header.path_bytes()).into_owned();
            format!("{name} (tar header at payload byte {pos})")
        };
        let stored = header
            .cksum()
            .map_err(|_| BundleError::entry(where_(), "unreadable header checksum"))?;
        let computed: u32 = block[..148].iter().map(|&b| b as u32).sum::<u32>()
            + 8 * b' ' as u32
            + block[156..].iter().map(|&b| b as u32).sum::<u32>();
        if stored != computed {
            return Err(BundleError::entry(
                where_(),
                "tar header checksum mismatch (damaged header)",
            ));
        }
        let size = header
            .entry_size()
            .map_err(|_| BundleError::entry(where_(), "unreadable size field"))?;
        let data_offset = pos + BLOCK;
        let end = padded_end(data_offset, size, total).ok_or_else(|| {
            BundleError::entry(
                where_(),
                format!("entry of {size} bytes runs past the end of the payload (truncated)"),
            )
        })?;
        let typ = header.entry_type();
        let typeflag = block[156];
        match typeflag {
            b'L' => {
                if size > MAX_PATH_LEN as u64 + 1 {
                    return Err(BundleError::entry(
                        where_(),
                        "GNU long name longer than allowed",
                    ));
                }
                let data = read_data(payload, data_offset, size, pos)?;
                let name = String::from_utf8(data)
                    .map_err(|_| BundleError::entry(where_(), "long name is not UTF-8"))?;
                long_name = Some(name.trim_end_matches('\0').to_string());
            }
            b'x' => {
                if size > MAX_PAX {
                    return Err(BundleError::entry(
                        where_(),
                        "pax header larger than 64 KiB",
                    ));
                }
                let data = read_data(payload, data_offset, size, pos)?;
                for (k, v) in parse_pax(&data).map_err(|e| BundleError::entry(where_(), e))? {
                    match k.as_str() {
                        "path" => pax_path = Some(v),
                        "size" => {
                            pax_size = Some(v.parse().map_err(|_| {
                                BundleError::entry(where_(), "pax size is not a number")
                            })?)
                        }
                        _ => {}
                    }
                }
            }
            b'g' => {
                if size > MAX_PAX {
                    return Err(BundleError::entry(
                        where_(),
                        "pax global header larger than 64 KiB",
                    ));
                }
            }
            b'0' | 0 | b'5' => {
                let path = match (pax_path.take(), long_name.take()) {
                    (Some(p), _) | (None, Some(p)) => p,
                    (None, None) => String::from_utf8(header.path_bytes().into_owned())
                        .map_err(|_| BundleError::entry(where_(), "path is not UTF-8"))?,
                };
                let size = pax_size.take().unwrap_or(size);
                let path_clean = if typeflag == b'5' {
                    path.trim_end_matches('/').to_string()
                } else {
                    path.clone()
                };
                check_entry_path(&path_clean).map_err(|e| BundleError::entry(&path, e))?;
                let end = padded_end(data_offset, size, total).ok_or_else(|| {
                    BundleError::entry(&path, "entry runs past the end of the payload (truncated)")
                })?;
                out.push(TarEntry {
                    path: path_clean,
                    kind: if typeflag == b'5' {
                        TarKind::Dir
                    } else {
                        TarKind::File
                    },
                    size,
                    data_offset,
                    mode: header.mode().unwrap_or(0o644) & 0o777,
                });
                pos = end;
                continue;
            }
            _ => {
                let what = if typ.is_symlink() {
                    format!("symbolic link to {:?}", link(header))
                } else if typ.is_hard_link() {
                    format!("hard link to {:?}", link(header))
                } else if typ.is_character_special() || typ.is_block_special() {
                    "device node".to_string()
                } else if typ.is_fifo() {
                    "fifo".to_string()
                } else {
                    format!("entry type {:?}", typeflag as char)
                };
                return Err(BundleError::entry(
                    where_(),
                    format!("{what}: bundles may only hold regular files and directories"),
                ));
            }
        }
        pos = end;
    }
}

fn link(h: &tar::Header) -> String {
    h.link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn io_err(pos: u64) -> impl Fn(std::io::Error) -> BundleError {
    move |e| BundleError::entry(format!("tar header at payload byte {pos}"), e.to_string())
}

fn read_data(p: &mut SubFile, off: u64, size: u64, pos: u64) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; size as usize];
    p.seek(SeekFrom::Start(off)).map_err(io_err(pos))?;
    p.read_exact(&mut buf).map_err(io_err(pos))?;
    Ok(buf)
}

/// Parses pax records `"<len> <key>=<value>\n"`.
fn parse_pax(data: &[u8]) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && rest[0] != 0 {
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("bad pax record")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad pax record length")?;
        if len <= sp + 1 || len > rest.len() {
            return Err("pax record length out of range".into());
        }
        let rec =
            std::str::from_utf8(&rest[sp + 1..len - 1]).map_err(|_| "pax record not UTF-8")?;
        let (k, v) = rec.split_once('=').ok_or("pax record without '='")?;
        out.push((k.to_string(), v.to_string()));
        rest = &rest[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    fn scan_bytes(bytes: &[u8]) -> Result<Vec<TarEntry>> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        let len = bytes.len() as u64;
        scan(&mut SubFile::new(Arc::new(f), 0, len))
    }

    fn tar_with(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        f(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    }

    #[test]
    fn finds_files_and_offsets_incl_long_names() {
        let long = format!("files/{}/x", "d".repeat(150));
        let t = tar_with(|b| {
            file(b, "a", b"hello");
            file(b, &long, b"world!");
        });
        let e = scan_bytes(&t).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].path, "a");
        assert_eq!(&t[e[0].data_offset as usize..][..5], b"hello");
        assert_eq!(e[1].path, long);
        assert_eq!(&t[e[1].data_offset as usize..][..6], b"world!");
    }

    #[test]
    fn refuses_links_devices_and_escapes() {
        let sym = tar_with(|b| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "oci", "/etc").unwrap();
        });
        let err = scan_bytes(&sym).unwrap_err().to_string();
        assert!(
            err.contains("symbolic link") && err.contains("oci"),
            "{err}"
        );

        let hard = tar_with(|b| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            b.append_link(&mut h, "x", "../../etc/passwd").unwrap();
        });
        let err = scan_bytes(&hard).unwrap_err().to_string();
        assert!(err.contains("hard link"), "{err}");

        let dev = tar_with(|b| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Char);
            h.set_size(0);
            b.append_data(&mut h, "dev", &b""[..]).unwrap();
        });
        assert!(scan_bytes(&dev)
            .unwrap_err()
            .to_string()
            .contains("device node"));

        // The tar crate refuses to write `..`, so forge the name in the raw header.
        let mut t = tar_with(|b| file(b, "xx/evil", b"x"));
        t[0..8].copy_from_slice(b"../evil\0");
        let mut h = tar::Header::from_byte_slice(&t[..512]).clone();
        h.set_cksum();
        t[..512].copy_from_slice(h.as_bytes());
        let err = scan_bytes(&t).unwrap_err().to_string();
        assert!(err.contains("../evil") && err.contains(".."), "{err}");
    }

    #[test]
    fn detects_truncation_and_damaged_headers() {
        let t = tar_with(|b| file(b, "a", &[1u8; 2000]));
        assert!(scan_bytes(&t[..1024])
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        let mut bad = t.clone();
        bad[10] ^= 1;
        assert!(scan_bytes(&bad)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
    }

    #[test]
    fn huge_sizes_use_base256_and_round_trip() {
        // Entries over 8 GiB do not fit ustar's octal field; GNU base-256 does.
        let mut h = tar::Header::new_gnu();
        h.set_size(9 * 1024 * 1024 * 1024 + 7);
        assert_eq!(h.entry_size().unwrap(), 9 * 1024 * 1024 * 1024 + 7);
    }

    /// A size near `u64::MAX` once overflowed the padding arithmetic: a panic in debug
    /// builds, and in release the padded size wrapped to 0, so a crafted entry passed as
    /// empty and `--check` and `--extract` accepted the bundle.
    #[test]
    fn sizes_near_u64_max_are_refused_not_wrapped() {
        for size in [u64::MAX, u64::MAX - 510, u64::MAX - 511, 1 << 63] {
            let mut t = tar_with(|b| file(b, "a", b""));
            let mut h = tar::Header::from_byte_slice(&t[..512]).clone();
            h.set_size(size);
            h.set_cksum();
            t[..512].copy_from_slice(h.as_bytes());
            assert_eq!(h.entry_size().unwrap(), size);
            let err = scan_bytes(&t).unwrap_err().to_string();
            assert!(err.contains("runs past the end"), "{size}: {err}");
        }
        // The same through a pax `size` record.
        let t = tar_with(|b| {
            let mut pax = tar::Header::new_ustar();
            let rec = format!("29 size={}\n", u64::MAX - 510);
            assert_eq!(rec.len(), 29);
            pax.set_entry_type(tar::EntryType::XHeader);
            pax.set_size(rec.len() as u64);
            b.append_data(&mut pax, "pax", rec.as_bytes()).unwrap();
            file(b, "a", b"");
        });
        let err = scan_bytes(&t).unwrap_err().to_string();
        assert!(err.contains("runs past the end"), "{err}");
    }

    #[test]
    fn padded_end_is_bounded_by_what_remains() {
        assert_eq!(padded_end(512, 0, 1024), Some(512));
        assert_eq!(padded_end(512, 1, 1024), Some(1024));
        assert_eq!(padded_end(512, 512, 1024), Some(1024));
        assert_eq!(padded_end(512, 513, 1024), None);
        assert_eq!(padded_end(2048, 0, 1024), None);
        assert_eq!(padded_end(512, u64::MAX, u64::MAX), None);
        assert_eq!(padded_end(0, u64::MAX - 1, u64::MAX), None);
    }
}
