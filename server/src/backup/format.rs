//! The backup file: a text line, a JSON header line, binary records, a SHA-256 trailer.
//!
//! ```text
//! KITH-RELAY-BACKUP 1\n                      magic and format version
//! {"format":1,"relay_version":…,"about":…}\n  the header: readable with `head -n 2 FILE`
//! record*                                    1 ‖ name_len:u8 ‖ tree ‖ key_len:u32 ‖ key ‖ value_len:u32 ‖ value
//!                                            2 ‖ name_len:u8 ‖ path ‖ len:u32 ‖ bytes   (a data-dir file)
//! 0 ‖ records:u64                            the end, with the number of records before it
//! sha256:[32]                                of every byte before it
//! ```
//!
//! Integers are big-endian. A reader checks the checksum over the whole file before it
//! trusts a single record, and every length against what is left, so a damaged file is an
//! error, never a panic or a huge allocation.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first line's text before the version.
pub(super) const MAGIC: &str = "KITH-RELAY-BACKUP ";
/// The format this code writes and reads.
pub(super) const FORMAT: u32 = 1;

const TAG_END: u8 = 0;
const TAG_TREE: u8 = 1;
const TAG_FILE: u8 = 2;
const CHECKSUM_LEN: u64 = 32;
/// Longest header line read.
const MAX_HEADER: u64 = 64 * 1024;

/// The JSON header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT`].
    pub format: u32,
    /// The `kith-relay` version that wrote it.
    pub relay_version: String,
    /// When the backup started (RFC 3339).
    pub created_at: String,
    /// The storage engine it was taken from (`sled`).
    pub store: String,
    /// The engine's layout version; a restore needs the same.
    pub schema: u32,
    /// What the file holds and what it does not (see `ABOUT` in the parent module).
    pub about: String,
}

/// One record of the file.
#[derive(Debug)]
pub(super) enum Record {
    /// A (key, value) of a store tree.
    Tree {
        tree: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// A file of the data directory, by its path relative to it.
    File { path: String, bytes: Vec<u8> },
}

/// Why a file cannot be read as a backup. Every message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Reading the file failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// It does not start with the magic line.
    #[error(
        "{} is not a kith-relay backup (it does not start with \"KITH-RELAY-BACKUP\"); give the \
         file `kith-relay backup --to` wrote",
        .0.display()
    )]
    NotABackup(PathBuf),
    /// A format this version cannot read.
    #[error(
        "{} is a backup in format {found}, but this kith-relay reads format {FORMAT}: restore \
         it with a kith-relay of the version that wrote it",
        path.display()
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: String,
    },
    /// The checksum does not match.
    #[error(
        "{} is damaged: its SHA-256 checksum does not match its contents (it was truncated or \
         changed after it was written). Nothing was restored; use another backup",
        .0.display()
    )]
    Checksum(PathBuf),
    /// The checksum matched but the contents are malformed (written by a buggy or foreign tool).
    #[error("{} is malformed ({what}) although its checksum matches; use another backup", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
}

/// Writes a backup: [`start`](Self::start), [`record`](Self::record)s, [`finish`](Self::finish).
pub(super) struct Writer<W: Write> {
    out: BufWriter<W>,
    hash: Sha256,
    records: u64,
    bytes: u64,
}

impl<W: Write> Writer<W> {
    /// Writes the magic line and the header.
    pub(super) fn start(out: W, header: &Header) -> io::Result<Self> {
        let mut writer = Self {
            out: BufWriter::with_capacity(256 * 1024, out),
            hash: Sha256::new(),
            records: 0,
            bytes: 0,
        };
        writer.put(format!("{MAGIC}{FORMAT}\n").as_bytes())?;
        let json = serde_json::to_string(header).map_err(io::Error::other)?;
        writer.put(json.as_bytes())?;
        writer.put(b"\n")?;
        Ok(writer)
    }

    /// Appends a tree record.
    pub(super) fn tree(&mut self, tree: &str, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.put(&[TAG_TREE])?;
        self.short(tree)?;
        self.long(key)?;
        self.long(value)?;
        self.records += 1;
        Ok(())
    }

    /// Appends a data-directory file.
    pub(super) fn file(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.put(&[TAG_FILE])?;
        self.short(path)?;
        self.long(bytes)?;
        self.records += 1;
        Ok(())
    }

    /// Bytes written so far.
    pub(super) fn written(&self) -> u64 {
        self.bytes
    }

    /// Writes the end record and the checksum, and flushes.
    pub(super) fn finish(mut self) -> io::Result<u64> {
        self.put(&[TAG_END])?;
        let records = self.records;
        self.put(&records.to_be_bytes())?;
        let digest = std::mem::take(&mut self.hash).finalize();
        self.out.write_all(&digest)?;
        self.out.flush()?;
        Ok(self.bytes + CHECKSUM_LEN)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.bytes += u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        self.out.write_all(bytes)
    }

    fn short(&mut self, text: &str) -> io::Result<()> {
        let len = u8::try_from(text.len()).map_err(io::Error::other)?;
        self.put(&[len])?;
        self.put(text.as_bytes())
    }

    fn long(&mut self, bytes: &[u8]) -> io::Result<()> {
        let len = u32::try_from(bytes.len()).map_err(io::Error::other)?;
        self.put(&len.to_be_bytes())?;
        self.put(bytes)
    }
}

/// Checks the magic line, the format and the checksum of the file at `path`, then calls
/// `each` with every record and, now and then, how many bytes were read. Returns the header.
pub(super) fn read(
    path: &Path,
    mut each: impl FnMut(Record) -> anyhow::Result<()>,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Header> {
    let io = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    let mut reader = Reader {
        path,
        inner: BufReader::with_capacity(256 * 1024, File::open(path).map_err(io)?),
        // The magic line may be read up to the end: a short file of a newer format is named
        // as such. Then the checksum is fenced off.
        left: size,
        read: 0,
    };
    reader.magic()?;
    reader.left = size
        .saturating_sub(CHECKSUM_LEN)
        .saturating_sub(reader.read);
    verify_checksum(path, size)?;
    let header = reader.header()?;
    let mut records = 0u64;
    loop {
        match reader.u8()? {
            TAG_END => break,
            TAG_TREE => {
                let tree = reader.short()?;
                let key = reader.long()?;
                let value = reader.long()?;
                each(Record::Tree { tree, key, value })?;
            }
            TAG_FILE => {
                let path = reader.short()?;
                let bytes = reader.long()?;
                each(Record::File { path, bytes })?;
            }
            tag => return Err(reader.malformed(format!("unknown record tag {tag}")).into()),
        }
        records += 1;
        progress(reader.read);
    }
    let counted = u64::from_be_bytes(reader.array()?);
    if counted != records || reader.left != 0 {
        return Err(reader
            .malformed(format!("{records} records, the end record says {counted}"))
            .into());
    }
    progress(size);
    Ok(header)
}

/// Hashes everything but the last 32 bytes and compares with them.
fn verify_checksum(path: &Path, size: u64) -> Result<(), FormatError> {
    let io = |source| FormatError::Io {
        path: path.to_owned(),
        source,
    };
    if size < CHECKSUM_LEN {
        return Err(FormatError::Checksum(path.to_owned()));
    }
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let mut hash = Sha256::new();
    let copied = io::copy(
        &mut (&mut file).take(size - CHECKSUM_LEN),
        &mut HashWriter(&mut hash),
    )
    .map_err(io)?;
    let mut trailer = [0u8; 32];
    file.read_exact(&mut trailer).map_err(io)?;
    if copied != size - CHECKSUM_LEN || hash.finalize().as_slice() != trailer {
        return Err(FormatError::Checksum(path.to_owned()));
    }
    Ok(())
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads the body of a backup, never past the checksum.
struct Reader<'a> {
    path: &'a Path,
    inner: BufReader<File>,
    /// Bytes left before the checksum.
    left: u64,
    /// Bytes read.
    read: u64,
}

impl Reader<'_> {
    /// The magic line (read before the checksum is verified: a file of another format or
    /// version is named as such, not as damaged).
    fn magic(&mut self) -> Result<(), FormatError> {
        let magic = self
            .line(64)
            .map_err(|_| FormatError::NotABackup(self.path.to_owned()))?;
        let Some(version) = magic.strip_prefix(MAGIC) else {
            return Err(FormatError::NotABackup(self.path.to_owned()));
        };
        if version != FORMAT.to_string() {
            return Err(FormatError::Version {
                path: self.path.to_owned(),
                found: version.chars().take(20).collect(),
            });
        }
        Ok(())
    }

    /// The JSON header line.
    fn header(&mut self) -> Result<Header, FormatError> {
        let line = self.line(MAX_HEADER)?;
        serde_json::from_str(&line).map_err(|e| self.malformed(format!("header: {e}")))
    }

    /// A line of at most `max` bytes, without its newline.
    fn line(&mut self, max: u64) -> Result<String, FormatError> {
        let mut bytes = Vec::new();
        loop {
            let [b] = self.array::<1>()?;
            if b == b'\n' {
                break;
            }
            if u64::try_from(bytes.len()).unwrap_or(u64::MAX) >= max {
                return Err(self.malformed("header line too long".into()));
            }
            bytes.push(b);
        }
        String::from_utf8(bytes).map_err(|_| self.malformed("header is not UTF-8".into()))
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    fn short(&mut self) -> Result<String, FormatError> {
        let len = self.u8()?;
        let bytes = self.bytes(u64::from(len))?;
        String::from_utf8(bytes).map_err(|_| self.malformed("a name is not UTF-8".into()))
    }

    fn long(&mut self) -> Result<Vec<u8>, FormatError> {
        let len = u32::from_be_bytes(self.array()?);
        self.bytes(u64::from(len))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        self.take(u64::try_from(N).unwrap_or(u64::MAX))?;
        self.inner.read_exact(&mut out).map_err(|e| self.io(e))?;
        Ok(out)
    }

    fn bytes(&mut self, len: u64) -> Result<Vec<u8>, FormatError> {
        self.take(len)?;
        let mut out = Vec::new();
        (&mut self.inner)
            .take(len)
            .read_to_end(&mut out)
            .map_err(|e| self.io(e))?;
        if u64::try_from(out.len()).unwrap_or(u64::MAX) != len {
            return Err(FormatError::Checksum(self.path.to_owned()));
        }
        Ok(out)
    }

    /// Accounts for `len` bytes about to be read; fails if they would run into the checksum.
    fn take(&mut self, len: u64) -> Result<(), FormatError> {
        if len > self.left {
            return Err(FormatError::Checksum(self.path.to_owned()));
        }
        self.left -= len;
        self.read += len;
        Ok(())
    }

    fn io(&self, source: io::Error) -> FormatError {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            return FormatError::Checksum(self.path.to_owned());
        }
        FormatError::Io {
            path: self.path.to_owned(),
            source,
        }
    }

    fn malformed(&self, what: String) -> FormatError {
        FormatError::Malformed {
            path: self.path.to_owned(),
            what,
        }
    }
}
