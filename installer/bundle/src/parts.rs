//! Split bundles: `delivery.run`, `delivery.run.002`, `delivery.run.003`, … for media with
//! a file size limit (FAT32: 4 GiB − 1 byte; a DVD: 4.7 GB).
//!
//! The parts are a plain byte split of one bundle: `cat delivery.run delivery.run.0*`
//! gives the single-file bundle back, and [`BundleFile`] presents the parts as that one
//! address space, so every reader (the footer, bundle.json, `verify`, `extract`, staging,
//! the registry's blob serving) works on a split bundle unchanged and nothing is joined
//! into a temporary copy. Part 1 holds at least the whole installer stub, so it is the
//! program that runs.
//!
//! Each part's size and sha256 are recorded in a *part table* between the payload and the
//! footer (so in the last part), so that a missing, truncated or damaged part is named on
//! its own ("part 3 of 6 is damaged: copy it again") rather than as a damaged entry of the
//! joined bytes. Why not a table in part 1, where it would be read first: the part
//! hashes are only known once everything is written, and part 1 is written first.
//!
//! Part table layout (integers little-endian), immediately before the footer:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `FERRYPRT` |
//! | 8 | 4 | part count `n` (equals the footer's) |
//! | 12 | 4 | reserved, zero |
//! | 16 | 40 × n | per part: size (8), sha256 (32) |
//! | 16 + 40n | 32 | sha256 of the table's bytes before this field |
//!
//! A part's sha256 covers the whole part file, except for the last part, whose sha256
//! covers its bytes before the part table (the table and footer check themselves).

use crate::digest::Sha256Digest;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub const TABLE_MAGIC: &[u8; 8] = b"FERRYPRT";
/// More parts than this is a mistake (`--split` far too small), and three-digit part
/// names keep `cat delivery.run delivery.run.[0-9]*` in order.
pub const MAX_PARTS: u32 = 999;
const ROW: u64 = 40;
const HEAD: u64 = 16;

/// One row of the part table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRow {
    pub size: u64,
    pub sha256: Sha256Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartTable {
    pub rows: Vec<PartRow>,
}

impl PartTable {
    /// Bytes a table of `n` rows takes (0 for no table).
    pub fn encoded_len(n: u32) -> u64 {
        if n == 0 {
            0
        } else {
            HEAD + ROW * n as u64 + 32
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(Self::encoded_len(self.rows.len() as u32) as usize);
        b.extend_from_slice(TABLE_MAGIC);
        b.extend_from_slice(&(self.rows.len() as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for r in &self.rows {
            b.extend_from_slice(&r.size.to_le_bytes());
            b.extend_from_slice(&r.sha256.0);
        }
        let check = Sha256Digest::of(&b);
        b.extend_from_slice(&check.0);
        b
    }

    /// Decodes a table of `n` rows (the footer's count); the reason says what is wrong.
    pub fn decode(b: &[u8], n: u32) -> Result<PartTable, String> {
        if b.len() as u64 != Self::encoded_len(n) || n == 0 {
            return Err(format!("part table of {} bytes for {n} parts", b.len()));
        }
        let body = &b[..b.len() - 32];
        if Sha256Digest::of(body).0[..] != b[b.len() - 32..] {
            return Err("the part table's own checksum does not match".into());
        }
        if &b[0..8] != TABLE_MAGIC {
            return Err("the part table has no FERRYPRT magic".into());
        }
        let count = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
        if count != n || b[12..16] != [0; 4] {
            return Err(format!("the part table says {count} parts, the footer {n}"));
        }
        let rows = body[HEAD as usize..]
            .chunks_exact(ROW as usize)
            .map(|r| PartRow {
                size: u64::from_le_bytes(r[0..8].try_into().expect("8 bytes")),
                sha256: Sha256Digest(r[8..40].try_into().expect("32 bytes")),
            })
            .collect();
        Ok(PartTable { rows })
    }
}

/// The file name of part `index` (1-based) of the bundle whose first part is `first`:
/// `first` itself, then `first.002`, `first.003`, ….
pub fn part_path(first: &Path, index: usize) -> PathBuf {
    if index <= 1 {
        return first.to_path_buf();
    }
    let mut s = first.as_os_str().to_owned();
    s.push(format!(".{index:03}"));
    PathBuf::from(s)
}

/// The part number of `name` if it is `<first file name>.<digits>` (2 or more), else None.
pub fn part_number(first_name: &str, name: &str) -> Option<usize> {
    let digits = name.strip_prefix(first_name)?.strip_prefix('.')?;
    if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n >= 2)
}

/// The files beside `first` named like its parts (`<first>.NNN`), as (number, path),
/// sorted by number.
pub fn files_named_as_parts(first: &Path) -> Vec<(usize, PathBuf)> {
    let (Some(dir), Some(base)) = (first.parent(), first.file_name().and_then(|n| n.to_str()))
    else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(usize, PathBuf)> = rd
        .flatten()
        .filter_map(|e| Some((part_number(base, e.file_name().to_str()?)?, e.path())))
        .collect();
    out.sort();
    out
}

/// One file of a bundle and where its bytes lie in the bundle.
#[derive(Debug)]
pub struct Part {
    /// The file as the operator names it (messages, and the registry reopens it by path).
    pub path: PathBuf,
    pub file: File,
    /// Offset of the part's first byte in the bundle.
    pub start: u64,
    pub len: u64,
}

/// `len` bytes at `offset` of the file at `path`: a piece of a bundle range that lies in
/// one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRange {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
}

/// A bundle's bytes: one file, or the parts of a split bundle presented as one address
/// space (offset 0 is the first byte of part 1; the last part ends with the footer).
#[derive(Debug)]
pub struct BundleFile {
    parts: Vec<Part>,
    len: u64,
}

/// Anything bytes can be read from by offset: a file, or a bundle's parts.
pub trait ReadAt: std::fmt::Debug + Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; 0 only at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for BundleFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        BundleFile::read_at(self, buf, offset)
    }
}

impl BundleFile {
    /// Parts in order, as (path, open file); their lengths are taken from the files.
    pub fn new(files: Vec<(PathBuf, File)>) -> io::Result<BundleFile> {
        let mut parts = Vec::with_capacity(files.len());
        let mut start = 0u64;
        for (path, file) in files {
            let len = file.metadata()?.len();
            parts.push(Part {
                path,
                file,
                start,
                len,
            });
            start += len;
        }
        Ok(BundleFile { parts, len: start })
    }

    /// Total length (of all parts).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    pub fn is_split(&self) -> bool {
        self.parts.len() > 1
    }

    /// Index (0-based) of the part holding byte `offset` (the last part past the end).
    pub fn part_index(&self, offset: u64) -> usize {
        self.parts
            .partition_point(|p| p.start + p.len <= offset)
            .min(self.parts.len().saturating_sub(1))
    }

    /// Reads up to `buf.len()` bytes at `offset`, from the one part that holds it (a read
    /// stops at a part's end; 0 means the end of the bundle).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let p = &self.parts[self.part_index(offset)];
        let within = offset - p.start;
        let n = (buf.len() as u64).min(p.len - within) as usize;
        FileExt::read_at(&p.file, &mut buf[..n], within)
    }

    /// Reads exactly `buf.len()` bytes at `offset`, across parts as needed.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the bundle ends before byte {}", offset + buf.len() as u64),
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Copies the `len` bytes at bundle offset `offset` to `dst` at its current position,
    /// part by part, in the kernel (`copy_file_range`: no pass through user space, which
    /// on the VMs measured cost staging twice the time of `cp`). Returns `Ok(false)`,
    /// having copied nothing, where the kernel cannot (another file system, an old
    /// kernel): the caller then writes the bytes itself.
    pub fn copy_to(&self, dst: &std::fs::File, offset: u64, len: u64) -> io::Result<bool> {
        let mut at = offset;
        let end = offset.saturating_add(len);
        let past_end = || {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the bundle ends before byte {end}"),
            )
        };
        while at < end {
            let p = &self.parts[self.part_index(at)];
            let mut within = at - p.start;
            if within >= p.len {
                return Err(past_end());
            }
            let n = (end - at).min(p.len - within) as usize;
            match rustix::fs::copy_file_range(&p.file, Some(&mut within), dst, None, n) {
                Ok(0) => return Err(past_end()),
                Ok(copied) => at += copied as u64,
                Err(rustix::io::Errno::INTR) => {}
                Err(
                    rustix::io::Errno::XDEV
                    | rustix::io::Errno::NOSYS
                    | rustix::io::Errno::INVAL
                    | rustix::io::Errno::OPNOTSUPP,
                ) if at == offset => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Where the `len` bytes at bundle offset `offset` lie: one [`FileRange`] per part
    /// they touch, in order. Ranges past the end are cut at the end.
    pub fn ranges(&self, offset: u64, len: u64) -> Vec<FileRange> {
        let end = offset.saturating_add(len).min(self.len);
        let mut out = Vec::new();
        let mut at = offset;
        while at < end {
            let p = &self.parts[self.part_index(at)];
            let stop = end.min(p.start + p.len);
            out.push(FileRange {
                path: p.path.clone(),
                offset: at - p.start,
                len: stop - at,
            });
            at = stop;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn parts_of(sizes: &[usize]) -> (tempfile::TempDir, BundleFile, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("d.run");
        let mut all = Vec::new();
        let mut files = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let bytes: Vec<u8> = (0..n).map(|j| (all.len() + j) as u8).collect();
            let path = part_path(&first, i + 1);
            std::fs::File::create(&path)
                .unwrap()
                .write_all(&bytes)
                .unwrap();
            files.push((path.clone(), File::open(&path).unwrap()));
            all.extend(bytes);
        }
        (dir, BundleFile::new(files).unwrap(), all)
    }

    #[test]
    fn the_kernel_copies_ranges_across_parts() {
        let (d, f, all) = parts_of(&[10, 7, 0, 13]);
        for (start, len) in [(0u64, 30u64), (3, 20), (9, 2), (17, 13)] {
            let out = d.path().join(format!("copy-{start}-{len}"));
            let dst = File::create(&out).unwrap();
            assert!(f.copy_to(&dst, start, len).unwrap());
            assert_eq!(
                std::fs::read(&out).unwrap(),
                &all[start as usize..(start + len) as usize]
            );
        }
        let dst = File::create(d.path().join("past")).unwrap();
        assert!(f.copy_to(&dst, 25, 10).is_err(), "past the end");
    }

    #[test]
    fn parts_read_as_one_address_space() {
        let (_d, f, all) = parts_of(&[10, 7, 0, 13]);
        assert_eq!(f.len(), 30);
        for start in 0..30u64 {
            for len in 0..=(30 - start) as usize {
                let mut buf = vec![0; len];
                f.read_exact_at(&mut buf, start).unwrap();
                assert_eq!(buf, &all[start as usize..start as usize + len]);
                let pieces = f.ranges(start, len as u64);
                assert_eq!(pieces.iter().map(|r| r.len).sum::<u64>(), len as u64);
            }
        }
        let mut buf = [0u8; 2];
        assert!(f.read_exact_at(&mut buf, 29).is_err());
        let r = f.ranges(8, 6);
        assert_eq!(
            r.iter().map(|r| (r.offset, r.len)).collect::<Vec<_>>(),
            [(8, 2), (0, 4)]
        );
        assert!(r[1].path.ends_with("d.run.002"));
        assert_eq!(f.part_index(17), 3, "the empty part 3 holds no byte");
    }

    #[test]
    fn part_names() {
        let p = Path::new("/m/delivery.run");
        assert_eq!(part_path(p, 1), p);
        assert_eq!(part_path(p, 3), Path::new("/m/delivery.run.003"));
        assert_eq!(part_path(p, 1000), Path::new("/m/delivery.run.1000"));
        assert_eq!(part_number("delivery.run", "delivery.run.002"), Some(2));
        assert_eq!(part_number("delivery.run", "delivery.run.001"), None);
        assert_eq!(part_number("delivery.run", "delivery.run.02"), None);
        assert_eq!(part_number("delivery.run", "delivery.run.sig"), None);
        assert_eq!(part_number("delivery.run", "other.run.002"), None);
    }

    #[test]
    fn table_round_trips_and_catches_every_flipped_byte() {
        let t = PartTable {
            rows: vec![
                PartRow {
                    size: 4 << 20,
                    sha256: Sha256Digest::of(b"1"),
                },
                PartRow {
                    size: 99,
                    sha256: Sha256Digest::of(b"2"),
                },
            ],
        };
        let b = t.encode();
        assert_eq!(b.len() as u64, PartTable::encoded_len(2));
        assert_eq!(PartTable::decode(&b, 2), Ok(t));
        assert!(PartTable::decode(&b, 3).is_err());
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 1;
            assert!(PartTable::decode(&c, 2).is_err(), "flip at {i}");
        }
    }
}
