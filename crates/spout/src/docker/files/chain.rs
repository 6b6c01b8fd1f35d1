//! One container's json-file log as the daemon keeps it: the file being written
//! (`<id>-json.log`) and the rotated ones (`.1`, `.2`, …; `.1.gz`, … with `compress=true`), each
//! known by its identity whatever it is called now.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::decode::{parse, Lines, MAX_LINE};
use crate::fnv::fnv1a;
use crate::position::{FileId, FilePosition};

/// Where a container's json-file log is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDir {
    pub dir: PathBuf,
    /// The file being written: `<id>-json.log`.
    pub base: String,
}

impl LogDir {
    /// The log whose file being written is `path` (inspect's `LogPath`).
    pub fn of(path: &Path) -> Option<LogDir> {
        let base = path.file_name()?.to_str()?.to_owned();
        Some(LogDir { dir: path.parent()?.to_owned(), base })
    }

    pub fn current(&self) -> PathBuf {
        self.dir.join(&self.base)
    }

    /// Whether `name` is one of this log's files: the current one, or a rotated one.
    pub fn is_ours(&self, name: &str) -> bool {
        let Some(rest) = name.strip_prefix(self.base.as_str()) else { return false };
        let rest = rest.strip_suffix(".gz").unwrap_or(rest);
        rest.is_empty()
            || rest.strip_prefix('.').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    /// Every file of the log there is now, open and identified, oldest first (the current one,
    /// which may be empty, last). A rotated file being compressed is there twice for a moment:
    /// the plain one is kept.
    pub fn files(&self) -> io::Result<Vec<LogFile>> {
        Ok(one_of_each(self.listing()?).0)
    }

    /// Every file of the log there is now, open, in no order: twins (a file and its gzipped
    /// copy) both.
    fn listing(&self) -> io::Result<Vec<LogFile>> {
        let mut files: Vec<LogFile> = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if self.is_ours(&name) {
                // Rotated away or deleted since the listing: not there.
                files.extend(LogFile::open(&entry.path()).ok());
            }
        }
        Ok(files)
    }
}

/// The first lines remembered of the files a log had: more than the daemon keeps (`max-file`).
const FINGERPRINTS: usize = 256;

/// `files` without the gzipped twin of a file that is there plain (the daemon compresses a
/// rotated file beside it, then deletes it), oldest first; and the twins left out.
fn one_of_each(files: Vec<LogFile>) -> (Vec<LogFile>, Vec<LogFile>) {
    let mut kept: Vec<LogFile> = Vec::new();
    let mut twins = Vec::new();
    for file in files {
        let twin = |k: &LogFile| k.gz != file.gz && file.id.fingerprint != 0 && k.id.fingerprint == file.id.fingerprint;
        match kept.iter().position(twin) {
            Some(i) if kept[i].gz => twins.push(std::mem::replace(&mut kept[i], file)),
            Some(_) => twins.push(file),
            None => kept.push(file),
        }
    }
    kept.sort_by_key(LogFile::age);
    (kept, twins)
}

/// The files of a log a reader has, and those it had while they are still there: a look at the
/// directory opens only the others.
///
/// Every file known is watched, by a descriptor of its own, until the daemon deletes it: its
/// inode is then nobody else's, so a plain file is known by its device and inode, and a gzipped
/// copy (which has an inode of its own) by its first line. Watching tells files rotated away
/// unseen too: every file the daemon makes is deleted once under a plain name (at the end of its
/// rotations, or once compressed; the copies' own deletions are neither heard nor counted), so a
/// deletion of a plain file the notifier hears of that is none of the known plain files' was a
/// file no look found, created and deleted in between.
#[derive(Debug, Default)]
pub struct Known {
    /// Every file known and still there.
    present: Vec<Watched>,
    /// The first lines of the files known lately: the daemon may still be writing a gzipped copy
    /// of one deleted since.
    fingerprints: VecDeque<u64>,
    /// Deletions heard of, since the first look.
    heard: u64,
    /// Deletions of known files seen.
    seen: u64,
    /// Files found deleted unseen so far.
    missed: u64,
    /// The first look is done: deletions count from then on.
    armed: bool,
}

#[derive(Debug)]
struct Watched {
    node: (u64, u64),
    fd: File,
    /// Its first line's hash, once it has one.
    fingerprint: u64,
    /// A gzipped copy: its deletion is not one the notifier counts.
    gz: bool,
}

impl Known {
    /// A file known from now on (until it is deleted).
    pub fn hold(&mut self, file: &LogFile) {
        let node = (file.id.dev, file.id.ino);
        if let Some(i) = self.find(file) {
            let w = &mut self.present[i];
            w.fingerprint = w.fingerprint.max(file.id.fingerprint);
        } else if file.gz && self.present.iter().any(|w| w.gz && w.node == node) {
            // A copy held already (copies are held again at every look).
        } else if let Ok(fd) = file.fd.try_clone() {
            self.present.push(Watched { node, fd, fingerprint: file.id.fingerprint, gz: file.gz });
        }
        if file.id.fingerprint != 0 {
            self.remember(file.id.fingerprint);
        }
    }

    /// A file the daemon truncated in place: it starts otherwise from now on.
    pub fn truncated(&mut self, id: &FileId) {
        if let Some(w) = self.present.iter_mut().find(|w| !w.gz && w.node == (id.dev, id.ino)) {
            w.fingerprint = 0;
        }
    }

    /// A file the reader let go, having read it to its end: known still, while it is there.
    pub fn release(&mut self, id: &FileId) {
        if id.fingerprint != 0 {
            self.remember(id.fingerprint);
        }
    }

    /// Whether the file is known.
    pub fn knows(&mut self, file: &LogFile) -> bool {
        self.find(file).is_some()
            || (file.gz && file.id.fingerprint != 0 && self.fingerprints.contains(&file.id.fingerprint))
    }

    /// The known plain file `file` is: the one with its device and inode. Both are open, so that
    /// inode is this file's: an inode goes to another file only once the last descriptor of the
    /// one deleted is closed (known files deleted are let go in `prune`, before a listing). Its
    /// first line is taken now if it had none; a file truncated in place starts otherwise and is
    /// the same file all the same.
    fn find(&mut self, file: &LogFile) -> Option<usize> {
        if file.gz {
            return None;
        }
        let node = (file.id.dev, file.id.ino);
        let i = self.present.iter().position(|w| !w.gz && w.node == node)?;
        let w = &mut self.present[i];
        if w.fingerprint == 0 {
            w.fingerprint = fingerprint_of(&w.fd);
        }
        Some(i)
    }

    /// Remembers a known file's first line (the latest [`FINGERPRINTS`] of them).
    fn remember(&mut self, fingerprint: u64) {
        if !self.fingerprints.contains(&fingerprint) {
            if self.fingerprints.len() == FINGERPRINTS {
                self.fingerprints.pop_front();
            }
            self.fingerprints.push_back(fingerprint);
        }
    }

    /// The known file at `i` was deleted: its first line is kept (a copy of it may be there).
    fn forget_deleted(&mut self, i: usize) {
        let mut w = self.present.swap_remove(i);
        if w.fingerprint == 0 {
            w.fingerprint = fingerprint_of(&w.fd);
        }
        if w.fingerprint != 0 {
            self.remember(w.fingerprint);
        }
        if !w.gz {
            self.seen += 1;
        }
    }

    /// Forgets the known files deleted since, counting them; names the others by their first
    /// lines where they have one by now.
    fn prune(&mut self) {
        // First lines first: a file deleted once compressed is known by its copy's.
        let mut named = Vec::new();
        for w in self.present.iter_mut().filter(|w| w.fingerprint == 0) {
            w.fingerprint = fingerprint_of(&w.fd);
            if w.fingerprint != 0 {
                named.push(w.fingerprint);
            }
        }
        for fingerprint in named {
            self.remember(fingerprint);
        }
        while let Some(i) = self.present.iter().position(|w| !w.fd.metadata().is_ok_and(|m| m.nlink() > 0)) {
            self.forget_deleted(i);
        }
    }

    /// The daemon deleted one of the log's files: how many more files than before are now known
    /// to have been deleted before any look found them.
    pub fn deleted(&mut self) -> u64 {
        if !self.armed {
            return 0;
        }
        self.heard += 1;
        self.prune();
        let missed = self.heard.saturating_sub(self.seen);
        let new = missed.saturating_sub(self.missed);
        self.missed = self.missed.max(missed);
        new
    }
}

impl LogDir {
    /// The log's files there are now that `known` does not know, oldest first, each known from
    /// now on.
    pub fn new_files(&self, known: &mut Known) -> io::Result<Vec<LogFile>> {
        // A gzipped copy still being written has no first line yet: it is neither a new file nor
        // a known one, until it is whole.
        // Known files deleted are forgotten first: a file listed and known may be deleted as this
        // looks, and is to be known all the same.
        known.prune();
        let listing: Vec<LogFile> = self.listing()?.into_iter().filter(|f| !f.gz || f.id.fingerprint != 0).collect();
        let (fresh, known_ones): (Vec<LogFile>, Vec<LogFile>) = listing.into_iter().partition(|f| !known.knows(f));
        // A gzipped copy of a known file, say: watched, so that its deletion is no loss either.
        for file in known_ones {
            known.hold(&file);
        }
        let (new, twins) = one_of_each(fresh);
        for file in new.iter().chain(&twins) {
            known.hold(file);
        }
        known.armed = true;
        Ok(new)
    }
}

/// Opens a log file to read without updating its access time where spout may (it owns the file,
/// or has CAP_FOWNER, as root does): the file being written changes between any two reads, so
/// every read would otherwise write its inode, a journal entry for each few lines read.
fn open_noatime(path: &Path) -> io::Result<File> {
    match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOATIME).open(path) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        opened => opened,
    }
}

/// One file of a json-file log, open, read from an offset on.
pub struct LogFile {
    pub id: FileId,
    /// Docker's timestamp of its first entry, once it has one.
    pub first_ts: Option<i64>,
    /// Its name when it was opened, for messages.
    pub name: String,
    gz: bool,
    reader: Box<dyn Read + Send>,
    /// Its descriptor (for a plain file, the one read from, which shares its offset).
    fd: File,
    lines: Lines,
    /// The last read reached the end (plain files only).
    at_end: bool,
}

impl std::fmt::Debug for LogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFile").field("id", &self.id).field("name", &self.name).finish_non_exhaustive()
    }
}

impl LogFile {
    /// Opens `path` (a gzipped one by its name) at its start.
    pub fn open(path: &Path) -> io::Result<LogFile> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let file = open_noatime(path)?;
        if name.ends_with(".gz") {
            let meta = file.metadata()?;
            let first = first_line(&mut flate2::read::GzDecoder::new(open_noatime(path)?))?;
            let mut log = LogFile {
                id: FileId { dev: meta.dev(), ino: meta.ino(), fingerprint: 0 },
                first_ts: None,
                name,
                gz: true,
                reader: Box::new(flate2::read::GzDecoder::new(file.try_clone()?)),
                fd: file,
                lines: Lines::new(0),
                at_end: false,
            };
            log.identify_with(first.as_deref());
            Ok(log)
        } else {
            LogFile::plain(file, name)
        }
    }

    /// A plain file already open (as the daemon created it), at its start.
    pub fn plain(file: File, name: String) -> io::Result<LogFile> {
        let meta = file.metadata()?;
        let mut log = LogFile {
            id: FileId { dev: meta.dev(), ino: meta.ino(), fingerprint: 0 },
            first_ts: None,
            name,
            gz: false,
            reader: Box::new(file.try_clone()?),
            fd: file,
            lines: Lines::new(0),
            at_end: false,
        };
        log.identify()?;
        Ok(log)
    }

    /// Whether this is the file `id` names: by its first line when `id` has one, else (a file
    /// that was empty) by device and inode.
    ///
    /// First lines can be alike: the pieces of one line longer than 16 KiB share its timestamp,
    /// so a run of such pieces fills file after file that start the same. A plain file is the
    /// same only with the same device and inode as well; a gzipped copy has an inode of its own.
    /// A file with no first line is not one that had one: its inode was given to a new file.
    pub fn is(&self, id: &FileId) -> bool {
        let same_node = self.id.dev == id.dev && self.id.ino == id.ino;
        let same_line = id.fingerprint != 0 && self.id.fingerprint == id.fingerprint;
        match (self.gz, id.fingerprint) {
            (true, _) => same_line,
            (false, 0) => same_node,
            (false, _) => same_node && same_line,
        }
    }

    /// Puts `files` oldest first, by their first entries as they are now: a file opened empty,
    /// as the daemon created it, has its first line by the time a newer one is found.
    pub fn in_order(files: &mut VecDeque<LogFile>) {
        for file in files.iter_mut().filter(|f| f.first_ts.is_none()) {
            // Unreadable now: left where it is, the newest.
            let _ = file.identify();
        }
        files.make_contiguous().sort_by_key(LogFile::age);
    }

    /// What orders the files of a log, oldest first: the first entry's timestamp, then the name
    /// (`.2` before `.1` before the file being written) for files that start alike.
    fn age(&self) -> (i64, std::cmp::Reverse<u32>) {
        let index = self.name.rsplit('.').find_map(|part| part.parse::<u32>().ok()).unwrap_or(0);
        (self.first_ts.unwrap_or(i64::MAX), std::cmp::Reverse(index))
    }

    /// Moves to `offset` bytes into its content (decompressing up to there, for a gzipped one).
    pub fn skip_to(&mut self, offset: u64) -> io::Result<()> {
        if self.gz {
            // From the start of the copy, whatever was read of it already (a skip that failed).
            self.fd.seek(SeekFrom::Start(0))?;
            self.reader = Box::new(flate2::read::GzDecoder::new(self.fd.try_clone()?));
            let skipped = io::copy(&mut (&mut self.reader).take(offset), &mut io::sink())?;
            if skipped < offset {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file is shorter than the position"));
            }
        } else {
            // The descriptor read from is a clone of this one: they share the offset.
            self.fd.seek(SeekFrom::Start(offset))?;
        }
        self.lines = Lines::new(offset);
        Ok(())
    }

    /// Reads what there is next (0 at its end for now); identifies it once it has a first line.
    /// For a plain file, a read that did not fill the room given reached its end as it is now
    /// ([`LogFile::at_end`]): no second read is needed to learn that.
    pub fn fill(&mut self) -> io::Result<usize> {
        let n = loop {
            let space = self.lines.space();
            let room = space.len();
            match self.reader.read(space) {
                Ok(n) => {
                    self.at_end = !self.gz && n < room;
                    break n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.lines.filled(0);
                    return Err(e);
                }
            }
        };
        self.lines.filled(n);
        if n > 0 && self.id.fingerprint == 0 {
            self.identify()?;
        }
        Ok(n)
    }

    /// Its size on disk now (0 if that cannot be told).
    pub fn size(&self) -> u64 {
        self.fd.metadata().map_or(0, |m| m.len())
    }

    /// How far into the file it has been read (what is held included).
    pub fn read_offset(&self) -> u64 {
        self.lines.offset() + self.lines.held() as u64
    }

    /// Whether the daemon truncated the file (a plain one) since it was read: it is now shorter
    /// than what was read of it, or starts otherwise (the lines written since the truncation can
    /// outgrow what was read before the reader looks).
    pub fn truncated(&self) -> io::Result<bool> {
        if self.gz {
            return Ok(false);
        }
        if self.fd.metadata()?.len() < self.read_offset() {
            return Ok(true);
        }
        if self.id.fingerprint == 0 {
            return Ok(false);
        }
        Ok(first_line_hash(&self.fd)? != self.id.fingerprint)
    }

    /// Reads the file again from its start, as a new one (after it was truncated).
    pub fn restart(&mut self) -> io::Result<()> {
        self.fd.seek(SeekFrom::Start(0))?;
        self.lines = Lines::new(0);
        self.at_end = false;
        self.id.fingerprint = 0;
        self.first_ts = None;
        self.identify()
    }

    /// The last read reached the end of the file as it was then.
    pub fn at_end(&self) -> bool {
        self.at_end
    }

    /// Its lines, as read so far.
    pub fn lines(&mut self) -> &mut Lines {
        &mut self.lines
    }

    /// The point `offset` bytes into it, after an entry stamped `ts_ns`.
    pub fn at(&self, offset: u64, ts_ns: i64) -> FilePosition {
        FilePosition { file: self.id, offset, ts_ns }
    }

    /// Reads its first line, if it is complete, and names the file by it.
    fn identify(&mut self) -> io::Result<()> {
        if !self.gz {
            let first = first_line(&mut At { file: &self.fd, offset: 0 })?;
            self.identify_with(first.as_deref());
        }
        Ok(())
    }

    fn identify_with(&mut self, first: Option<&[u8]>) {
        if let Some(line) = first {
            self.id.fingerprint = fingerprint(line);
            self.first_ts = parse(&line[..line.len() - 1]).map(|e| e.ts_ns);
        }
    }
}

/// A plain file's fingerprint now: the hash of its first line, or 0 while it has none.
fn fingerprint_of(file: &File) -> u64 {
    first_line_hash(file).unwrap_or(0)
}

/// The same, or why the file could not be read.
fn first_line_hash(file: &File) -> io::Result<u64> {
    Ok(first_line(&mut At { file, offset: 0 })?.map_or(0, |line| fingerprint(&line)))
}

/// A first line's fingerprint: never 0, which means "no first line yet".
fn fingerprint(line: &[u8]) -> u64 {
    fnv1a(line).max(1)
}

/// A file read from an offset of its own, leaving the descriptor's offset alone.
struct At<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// The first line of `from`, with its newline, if it has a complete one.
fn first_line(from: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    while line.len() <= MAX_LINE {
        let n = match from.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A gzipped file cut short (still being written): no first line yet.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        };
        if let Some(end) = chunk[..n].iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&chunk[..=end]);
            return Ok(Some(line));
        }
        line.extend_from_slice(&chunk[..n]);
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;
    use crate::docker::files::decode::Decoded;

    pub(crate) fn entry(n: u32) -> String {
        format!(
            "{{\"log\":\"line {n}\\n\",\"stream\":\"stdout\",\"time\":\"2026-12-06T19:20:{:02}.{n:09}Z\"}}\n",
            n / 1_000_000
        )
    }

    fn texts(file: &mut LogFile) -> Vec<String> {
        while file.fill().expect("read") > 0 {}
        let mut out = Vec::new();
        while let Some(d) = file.lines().next_line() {
            if let Decoded::Entry { entry, .. } = d {
                out.push(entry.log.trim_end().to_owned());
            }
        }
        out
    }

    fn gzip(path: &Path, text: &str) {
        let mut gz = flate2::write::GzEncoder::new(File::create(path).expect("create"), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).expect("write");
        gz.finish().expect("finish");
    }

    #[test]
    fn the_files_of_a_log_oldest_first_known_by_their_first_line() {
        let dir = tempfile::tempdir().expect("dir");
        let log = LogDir { dir: dir.path().to_owned(), base: "c-json.log".into() };
        let range = |a: u32, b: u32| (a..=b).map(entry).collect::<String>();
        gzip(&dir.path().join("c-json.log.2.gz"), &range(1, 3));
        std::fs::write(dir.path().join("c-json.log.1"), range(4, 6)).expect("write");
        // Being compressed: the same file twice.
        gzip(&dir.path().join("c-json.log.1.gz"), &range(4, 6));
        std::fs::write(dir.path().join("c-json.log"), range(7, 8)).expect("write");
        std::fs::write(dir.path().join("c-json.log.bak"), range(9, 9)).expect("write");
        std::fs::write(dir.path().join("other-json.log"), range(9, 9)).expect("write");
        let mut files = log.files().expect("files");
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["c-json.log.2.gz", "c-json.log.1", "c-json.log"]);
        assert_eq!(texts(&mut files[0]), ["line 1", "line 2", "line 3"]);
        // Found again by identity after a rotation renamed (and compressed) it.
        let id = files[1].id;
        std::fs::remove_file(dir.path().join("c-json.log.1")).expect("rm");
        let again = log.files().expect("files");
        let found = again.iter().find(|f| f.is(&id)).expect("found by its first line");
        assert_eq!(found.name, "c-json.log.1.gz");
    }

    #[test]
    fn a_file_is_read_from_an_offset_plain_or_gzipped_and_grows() {
        let dir = tempfile::tempdir().expect("dir");
        let text: String = (1..=3).map(entry).collect();
        let second = entry(1).len() as u64;
        let plain = dir.path().join("c-json.log");
        std::fs::write(&plain, &text).expect("write");
        let gz = dir.path().join("c-json.log.1.gz");
        gzip(&gz, &text);
        for path in [&plain, &gz] {
            let mut f = LogFile::open(path).expect("open");
            f.skip_to(second).expect("skip");
            assert_eq!(texts(&mut f), ["line 2", "line 3"], "{}", path.display());
        }
        let mut f = LogFile::open(&plain).expect("open");
        assert_eq!(texts(&mut f).len(), 3);
        let mut append = std::fs::OpenOptions::new().append(true).open(&plain).expect("open");
        append.write_all(entry(4).as_bytes()).expect("append");
        assert_eq!(texts(&mut f), ["line 4"], "what is written later is read from where reading stopped");
    }

    #[test]
    fn an_empty_file_is_identified_once_its_first_line_is_complete() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c-json.log");
        let mut w = File::create(&path).expect("create");
        let mut f = LogFile::plain(File::open(&path).expect("open"), "c-json.log".into()).expect("plain");
        assert_eq!(f.id.fingerprint, 0);
        let line = entry(1);
        w.write_all(&line.as_bytes()[..10]).expect("write");
        f.fill().expect("fill");
        assert_eq!(f.id.fingerprint, 0, "not before its first line is whole");
        w.write_all(&line.as_bytes()[10..]).expect("write");
        f.fill().expect("fill");
        assert_ne!(f.id.fingerprint, 0);
        assert_eq!(f.first_ts, crate::timestamp::parse_rfc3339_ns(b"2026-12-06T19:20:00.000000001Z"));
        assert!(LogFile::open(&path).expect("open").is(&f.id));
    }

    #[test]
    fn a_look_at_the_directory_finds_only_the_files_not_known() {
        let dir = tempfile::tempdir().expect("dir");
        let log = LogDir { dir: dir.path().to_owned(), base: "c-json.log".into() };
        std::fs::write(log.current(), entry(1)).expect("write");
        let mut known = Known::default();
        let first = log.new_files(&mut known).expect("files");
        assert_eq!(first.len(), 1);
        assert!(log.new_files(&mut known).expect("files").is_empty(), "held");
        // Rotated twice while the reader was busy: the one in between is found too, in order.
        std::fs::rename(log.current(), dir.path().join("c-json.log.2")).expect("rename");
        std::fs::write(dir.path().join("c-json.log.1"), entry(2)).expect("write");
        std::fs::write(log.current(), "").expect("write");
        let new = log.new_files(&mut known).expect("files");
        let names: Vec<&str> = new.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["c-json.log.1", "c-json.log"]);
        // Read to its end and let go, the first is not taken again while it is there.
        known.release(&first[0].id);
        drop(first);
        assert!(log.new_files(&mut known).expect("files").is_empty());
        // Deleting known files is no loss; deleting one no look found is.
        std::fs::remove_file(dir.path().join("c-json.log.2")).expect("rm");
        assert_eq!(known.deleted(), 0);
        std::fs::write(dir.path().join("c-json.log.3"), entry(3)).expect("write");
        std::fs::remove_file(dir.path().join("c-json.log.3")).expect("rm");
        assert_eq!(known.deleted(), 1, "a file created and deleted between two looks");
    }

    #[test]
    fn names_of_a_log() {
        let log = LogDir::of(Path::new("/var/lib/docker/containers/c/c-json.log")).expect("a path");
        assert_eq!(log.dir, Path::new("/var/lib/docker/containers/c"));
        for (name, ours) in [
            ("c-json.log", true),
            ("c-json.log.1", true),
            ("c-json.log.12.gz", true),
            ("c-json.log.", false),
            ("c-json.log.gz", true),
            ("c-json.log.x", false),
            ("hostname", false),
        ] {
            assert_eq!(log.is_ours(name), ours, "{name}");
        }
    }
}
