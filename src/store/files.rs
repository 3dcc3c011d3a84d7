//! Owns the state store's files and their formats: snapshots (`snapshot-<gen>.bin`: a header with
//! magic, format version, checksum and length, then the tables as bincode, deflated) written to a
//! temporary file, fsynced, renamed and the directory fsynced; and the change log between them
//! (`log-<gen>.bin`: a header, then records, each its length, its CRC-32 and its bincode), read
//! back up to the first record that is torn or corrupt. What is on disk is outside input: every
//! read is checked, nothing here panics on it.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

/// A snapshot's first bytes.
const SNAPSHOT_MAGIC: &[u8; 8] = b"ERLMCPSN";
/// A change log's first bytes.
const LOG_MAGIC: &[u8; 8] = b"ERLMCPLG";
/// The format of both; a file of another version is refused (and named).
pub(crate) const FORMAT_VERSION: u32 = 1;
/// magic, version, CRC-32 of the body, length of the body.
const SNAPSHOT_HEADER: usize = 8 + 4 + 4 + 8;
/// magic, version.
const LOG_HEADER: usize = 8 + 4;
/// A log record longer than this is taken for a corrupt length.
const MAX_RECORD: usize = 64 << 20;

/// A table's entries as a snapshot holds them: key and value.
pub(crate) type Entries = Vec<(String, Vec<u8>)>;

/// The tables as a snapshot holds them.
#[derive(Debug, Default, bincode::Encode, bincode::Decode)]
pub(crate) struct SnapshotBody {
    /// Each table's name and entries.
    pub(crate) tables: Vec<(String, Entries)>,
}

/// One change as the log holds it: a put (`Some`) or a delete (`None`).
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub(crate) struct LogRecord {
    pub(crate) table: String,
    pub(crate) key: String,
    pub(crate) value: Option<Vec<u8>>,
}

/// Why a file was refused (what the log line says after its name).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Refused {
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    #[error("truncated: {0} bytes, shorter than its header")]
    ShortHeader(usize),
    #[error("not a store file (bad magic)")]
    Magic,
    #[error("format version {0}, this build reads {FORMAT_VERSION}")]
    Version(u32),
    #[error("truncated: the header announces {announced} bytes of body, {found} are there")]
    Truncated { announced: u64, found: usize },
    #[error("checksum mismatch: the body is corrupt")]
    Checksum,
    #[error("cannot decode it: {0}")]
    Decode(String),
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// The store's files in `dir`: snapshots and logs, each by generation, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub(crate) snapshots: Vec<(u64, PathBuf)>,
    pub(crate) logs: Vec<(u64, PathBuf)>,
}

/// Lists `dir` (an absent directory lists nothing). Left-over temporary files are removed.
pub(crate) fn list(dir: &Path) -> Listing {
    let mut listing = Listing::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return listing;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".tmp") && name.starts_with("snapshot-") {
            let _ = std::fs::remove_file(&path);
        } else if let Some(generation) = generation_of(name, "snapshot-") {
            listing.snapshots.push((generation, path));
        } else if let Some(generation) = generation_of(name, "log-") {
            listing.logs.push((generation, path));
        }
    }
    listing.snapshots.sort();
    listing.logs.sort();
    listing
}

fn generation_of(name: &str, prefix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?
        .strip_suffix(".bin")?
        .parse()
        .ok()
}

/// The snapshot of generation `generation` in `dir`.
pub(crate) fn snapshot_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("snapshot-{generation:020}.bin"))
}

/// The change log of generation `generation` in `dir`.
pub(crate) fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("log-{generation:020}.bin"))
}

/// Makes `dir` (private to the node's user) if it is not there.
pub(crate) fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Fsyncs a directory, so a file created or renamed in it stays after a power loss.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The bytes of a snapshot of `body`: header, then the deflated bincode.
pub(crate) fn encode_snapshot(body: &SnapshotBody) -> Result<Vec<u8>, String> {
    let raw = bincode::encode_to_vec(body, bincode_config()).map_err(|e| e.to_string())?;
    let mut deflate = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(raw.len() / 3 + SNAPSHOT_HEADER),
        flate2::Compression::fast(),
    );
    deflate.write_all(&raw).map_err(|e| e.to_string())?;
    let compressed = deflate.finish().map_err(|e| e.to_string())?;
    let mut file = Vec::with_capacity(SNAPSHOT_HEADER + compressed.len());
    file.extend_from_slice(SNAPSHOT_MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&crc32fast::hash(&compressed).to_le_bytes());
    file.extend_from_slice(&(compressed.len() as u64).to_le_bytes());
    file.extend_from_slice(&compressed);
    Ok(file)
}

/// Writes the snapshot `bytes` as generation `generation`: a temporary file, fsynced, renamed,
/// and the directory fsynced. Returns its path.
pub(crate) fn write_snapshot(
    dir: &Path,
    generation: u64,
    bytes: &[u8],
) -> std::io::Result<PathBuf> {
    ensure_dir(dir)?;
    let path = snapshot_path(dir, generation);
    let temporary = path.with_extension("tmp");
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path)?;
    sync_dir(dir)?;
    Ok(path)
}

/// Reads and checks the snapshot at `path`.
pub(crate) fn read_snapshot(path: &Path) -> Result<SnapshotBody, Refused> {
    let bytes = std::fs::read(path).map_err(Refused::Read)?;
    decode_snapshot(&bytes)
}

/// Checks and decodes a snapshot's bytes.
pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<SnapshotBody, Refused> {
    if bytes.len() < SNAPSHOT_HEADER {
        return Err(Refused::ShortHeader(bytes.len()));
    }
    let (header, body) = bytes.split_at(SNAPSHOT_HEADER);
    if &header[..8] != SNAPSHOT_MAGIC {
        return Err(Refused::Magic);
    }
    let version = u32_at(header, 8);
    if version != FORMAT_VERSION {
        return Err(Refused::Version(version));
    }
    let checksum = u32_at(header, 12);
    let mut length = [0; 8];
    length.copy_from_slice(&header[16..24]);
    let announced = u64::from_le_bytes(length);
    if announced != body.len() as u64 {
        return Err(Refused::Truncated {
            announced,
            found: body.len(),
        });
    }
    if crc32fast::hash(body) != checksum {
        return Err(Refused::Checksum);
    }
    let mut raw = Vec::with_capacity(body.len() * 3);
    flate2::read::DeflateDecoder::new(body)
        .read_to_end(&mut raw)
        .map_err(|e| Refused::Decode(e.to_string()))?;
    let (decoded, _) = bincode::decode_from_slice(&raw, bincode_config())
        .map_err(|e| Refused::Decode(e.to_string()))?;
    Ok(decoded)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// A change log open for appending.
#[derive(Debug)]
pub(crate) struct LogWriter {
    file: File,
}

impl LogWriter {
    /// Creates the log of generation `generation` in `dir` (its header written and, with
    /// `sync`, fsynced with the directory).
    pub(crate) fn create(dir: &Path, generation: u64, sync: bool) -> std::io::Result<Self> {
        ensure_dir(dir)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(log_path(dir, generation))?;
        let mut header = Vec::with_capacity(LOG_HEADER);
        header.extend_from_slice(LOG_MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        file.write_all(&header)?;
        if sync {
            file.sync_data()?;
            sync_dir(dir)?;
        }
        Ok(Self { file })
    }

    /// Appends one record in one write (a killed process leaves it whole in the kernel, or not
    /// at all); with `sync`, fsynced before this returns.
    pub(crate) fn append(&mut self, record: &LogRecord, sync: bool) -> std::io::Result<()> {
        let frame = encode_record(record)?;
        self.file.write_all(&frame)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// A record framed: its length, its CRC-32, its bincode.
pub(crate) fn encode_record(record: &LogRecord) -> std::io::Result<Vec<u8>> {
    let payload = bincode::encode_to_vec(record, bincode_config())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// A change log read back: its whole records, and why it stopped early if it did (a torn or
/// corrupt tail: the offset and the reason).
#[derive(Debug, Default)]
pub(crate) struct LogContents {
    pub(crate) records: Vec<LogRecord>,
    pub(crate) stopped: Option<(usize, Refused)>,
}

/// Reads the change log at `path`.
pub(crate) fn read_log(path: &Path) -> Result<LogContents, Refused> {
    let bytes = std::fs::read(path).map_err(Refused::Read)?;
    decode_log(&bytes)
}

/// Decodes a change log's bytes up to its first torn or corrupt record.
pub(crate) fn decode_log(bytes: &[u8]) -> Result<LogContents, Refused> {
    if bytes.len() < LOG_HEADER {
        return Err(Refused::ShortHeader(bytes.len()));
    }
    if &bytes[..8] != LOG_MAGIC {
        return Err(Refused::Magic);
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(Refused::Version(version));
    }
    let mut contents = LogContents::default();
    let mut at = LOG_HEADER;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 8 {
            contents.stopped = Some((at, Refused::ShortHeader(rest.len())));
            break;
        }
        let length = u32_at(rest, 0) as usize;
        let checksum = u32_at(rest, 4);
        if length > MAX_RECORD || rest.len() - 8 < length {
            contents.stopped = Some((
                at,
                Refused::Truncated {
                    announced: length as u64,
                    found: rest.len() - 8,
                },
            ));
            break;
        }
        let payload = &rest[8..8 + length];
        if crc32fast::hash(payload) != checksum {
            contents.stopped = Some((at, Refused::Checksum));
            break;
        }
        match bincode::decode_from_slice::<LogRecord, _>(payload, bincode_config()) {
            Ok((record, _)) => contents.records.push(record),
            Err(e) => {
                contents.stopped = Some((at, Refused::Decode(e.to_string())));
                break;
            }
        }
        at += 8 + length;
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> SnapshotBody {
        SnapshotBody {
            tables: vec![(
                "t".into(),
                vec![("k1".into(), b"v1".to_vec()), ("k2".into(), vec![7; 3000])],
            )],
        }
    }

    #[test]
    fn a_snapshot_round_trips_and_every_damage_is_refused_by_name() {
        let bytes = encode_snapshot(&body()).unwrap();
        let back = decode_snapshot(&bytes).unwrap();
        assert_eq!(back.tables, body().tables);
        assert!(matches!(
            decode_snapshot(&bytes[..10]),
            Err(Refused::ShortHeader(10))
        ));
        assert!(matches!(
            decode_snapshot(&bytes[..bytes.len() - 1]),
            Err(Refused::Truncated { .. })
        ));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(matches!(decode_snapshot(&flipped), Err(Refused::Checksum)));
        let mut other = bytes.clone();
        other[8] = 9;
        assert!(matches!(decode_snapshot(&other), Err(Refused::Version(9))));
        assert!(matches!(decode_snapshot(&[0u8; 40]), Err(Refused::Magic)));
    }

    #[test]
    fn a_log_is_read_up_to_its_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogWriter::create(dir.path(), 3, true).unwrap();
        let record = |k: &str| LogRecord {
            table: "t".into(),
            key: k.into(),
            value: Some(b"v".to_vec()),
        };
        log.append(&record("a"), true).unwrap();
        log.append(&record("b"), false).unwrap();
        drop(log);
        let path = log_path(dir.path(), 3);
        let whole = read_log(&path).unwrap();
        assert_eq!(whole.records, vec![record("a"), record("b")]);
        assert!(whole.stopped.is_none());
        // Torn: the last record's final bytes never reached the disk.
        let bytes = std::fs::read(&path).unwrap();
        let torn = decode_log(&bytes[..bytes.len() - 2]).unwrap();
        assert_eq!(torn.records, vec![record("a")]);
        assert!(matches!(torn.stopped, Some((_, Refused::Truncated { .. }))));
        // Corrupt: a flipped byte in the last record.
        let mut corrupt = bytes.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let read = decode_log(&corrupt).unwrap();
        assert_eq!(read.records.len(), 1);
        assert!(matches!(read.stopped, Some((_, Refused::Checksum))));
        let listing = list(dir.path());
        assert_eq!(listing.logs, vec![(3, path)]);
    }
}
