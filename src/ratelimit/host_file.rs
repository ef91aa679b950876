//! The file behind `storage = "host"`: one LMDB environment that every worker process on the host
//! maps and updates in place, as nginx's shared-memory zones do, with no server.
//!
//! # Why LMDB (through `heed`)
//!
//! LMDB is memory-mapped and built for several processes: one writer at a time under a robust
//! process-shared mutex (a writer killed mid-transaction is detected by the next one, whose
//! transaction goes on; the dead one's pages were never reachable from a committed meta page),
//! copy-on-write pages so a crash never leaves a half-written tree. A hit is one short write
//! transaction in this process's own address space: no socket, no server.
//!
//! Flags: `NO_SYNC` / `NO_META_SYNC`, because quota counts need no durability across an OS crash
//! (losing them hands clients a fresh burst, as a restart of the in-memory store does) and an
//! fsync per hit would cost milliseconds; `NO_SUB_DIR`, so the store is one named file (plus
//! LMDB's `-lock` file beside it); `NO_READ_AHEAD`, since access is random.
//!
//! `WRITE_MAP` on Linux: a transaction then writes its pages straight into the shared map instead
//! of `pwrite`-ing them at commit, which measured 0.63 µs per hit against 3.27 µs (Rust, one key,
//! ext4). A shared writable map has one hazard: touching a page the file system has no block for
//! when it is full raises SIGBUS instead of returning an error. So before each transaction the
//! file's blocks are allocated (`fallocate`) past twice the pages in use plus a margin, which
//! covers what any one transaction can add; when that allocation fails the hit fails cleanly (the
//! limit's `on_error` applies). A file system without `fallocate`, and other systems, use plain
//! writes.
//!
//! # Processes
//!
//! An environment must not be used across `fork()` (LMDB's rule: the child's reader slots and
//! locks are not its own). So each process opens the file lazily on first use and remembers its
//! pid: a gunicorn `--preload` master that built the gate never holds the file open when it forks
//! (the build only probes it, then closes it), [`close_all`] runs before every `os.fork()` (the
//! binding layer registers it), and a process that finds an environment opened by another pid (a
//! fork from C, e.g. uWSGI) drops it and opens its own. Within a process, threads share one
//! environment under a mutex: LMDB allows one writer at a time anyway.
//!
//! # Damage
//!
//! A file LMDB cannot read (not an LMDB file, another LMDB version, a corrupt page) or written by
//! another format of this store is replaced by an empty one and a warning is logged: counts are
//! only worth their short lifetime, and a broken file must never stop the app. The check and
//! replacement happen under an exclusive lock on `<file>-init`, so processes starting together
//! agree on one new file. A path that cannot be used at all (no permission, a directory, a
//! read-only file system) is an error: a `ConfigError` at start-up.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

#[cfg(target_os = "linux")]
use rustix::fs::{FallocateFlags, fallocate};
use rustix::fs::{FlockOperation, flock};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, MdbError, RwTxn, WithoutTls};

use super::error::RateLimitError;

/// The layout of keys and values this store writes; a file holding another is started afresh.
pub const FORMAT_VERSION: u32 = 1;
/// The meta entry naming the layout: this tag, then the version (u32, little-endian).
const FORMAT_KEY: &[u8] = b"\0ferrogate:format";
const FORMAT_TAG: &[u8] = b"ferrogate-host-ratelimit";
/// Address space reserved for the file (it grows only as pages are used): about 12 million keys
/// of one quota.
pub const DEFAULT_MAP_BYTES: usize = 1 << 30;
/// LMDB's reader table; only `prune` and stats read, so a small one suffices.
const MAX_READERS: u32 = 126;
/// Allocated beyond twice the pages in use (writable-map mode), so a transaction never touches a
/// page without a block.
const RESERVE_MARGIN: u64 = 4 << 20;

/// The unnamed database: every entry of the store, keys as raw bytes.
pub type Db = Database<'static, Bytes, Bytes>;

/// What a write transaction's body decides: keep its writes or drop them.
pub enum Finish<T> {
    Commit(T),
    Abort(T),
}

/// One store file, shared by every limiter of this process that names it.
pub struct HostFile {
    path: PathBuf,
    map_bytes: usize,
    state: Mutex<Option<Opened>>,
}

impl std::fmt::Debug for HostFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The environment as this process opened it.
struct Opened {
    pid: u32,
    env: Env<WithoutTls>,
    db: Db,
    /// Where the incremental sweep of idle keys goes on (see `host_store`): a key, or empty for
    /// the start. Per process, so sweeping costs no write of its own.
    cursor: Vec<u8>,
    /// Writable-map mode: the data file and how many of its bytes this process has allocated.
    reserve: Option<(File, u64)>,
    page: u64,
}

impl Opened {
    /// Writable-map mode: makes sure the file has blocks well past the pages in use.
    #[cfg(target_os = "linux")]
    fn reserve(&mut self, map_bytes: usize) -> std::io::Result<()> {
        let Some((file, reserved)) = &mut self.reserve else {
            return Ok(());
        };
        let used = (self.env.info().last_page_number as u64 + 1) * self.page;
        let need = used
            .saturating_mul(2)
            .saturating_add(RESERVE_MARGIN)
            .min(map_bytes as u64);
        if need > *reserved {
            fallocate(&*file, FallocateFlags::empty(), 0, need)?;
            *reserved = need;
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn reserve(&mut self, _map_bytes: usize) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every file this process uses, by path, so two limiters (or two gates) naming one path share
/// one environment: LMDB forbids opening a file twice in one process.
static FILES: LazyLock<Mutex<HashMap<PathBuf, Weak<HostFile>>>> = LazyLock::new(Mutex::default);

/// Where warnings go (a file replaced, stale readers cleared). The binding layer points it at
/// the `ferrogate` logger; without it they go to stderr.
static WARN: OnceLock<fn(&str)> = OnceLock::new();

/// Sends this module's warnings to `f` (first call wins).
pub fn set_warn_hook(f: fn(&str)) {
    let _ = WARN.set(f);
}

fn warn(msg: &str) {
    match WARN.get() {
        Some(f) => f(msg),
        None => eprintln!("{msg}"),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state is an Option swapped whole; a panic elsewhere cannot leave it half-set.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The directory holding default store files: `$XDG_RUNTIME_DIR/ferrogate` (private to the user
/// and cleared at logout), else `<temp dir>/ferrogate-<uid>`.
#[must_use]
pub fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if Path::new(&d).is_absolute() => Path::new(&d).join("ferrogate"),
        _ => {
            let uid = fs::metadata("/proc/self").map_or_else(
                |_| std::env::var("USER").unwrap_or_else(|_| "user".into()),
                |m| m.uid().to_string(),
            );
            std::env::temp_dir().join(format!("ferrogate-{uid}"))
        }
    }
}

/// The default file of this app: one per working directory, which the worker processes of one
/// server share (a pre-fork server forks them from one directory). Not the command line: servers
/// rewrite it (gunicorn's process titles), so workers and master would disagree.
#[must_use]
pub fn default_path() -> PathBuf {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    if let Ok(cwd) = std::env::current_dir() {
        ctx.update(cwd.as_os_str().as_encoded_bytes());
    }
    let digest = ctx.finish();
    let mut name = String::from("limits-");
    for b in digest.as_ref().iter().take(6) {
        let _ = write!(name, "{b:02x}");
    }
    name.push_str(".mdb");
    default_dir().join(name)
}

impl HostFile {
    /// The store at `path` for this process, checked usable now (created if missing). The check
    /// opens the file and closes it again, so a process that forks after building its limiters
    /// hands its children nothing open.
    pub fn open(path: &Path, map_bytes: usize) -> Result<Arc<Self>, RateLimitError> {
        let path = absolute(path)?;
        prepare_dir(&path)?;
        // One spelling per file (symlinks, `..`), as LMDB allows one environment per file.
        let path = match (path.parent().map(fs::canonicalize), path.file_name()) {
            (Some(Ok(dir)), Some(name)) => dir.join(name),
            _ => path,
        };
        let file = {
            let mut files = lock(&FILES);
            files.retain(|_, w| w.strong_count() > 0);
            if let Some(f) = files.get(&path).and_then(Weak::upgrade) {
                f
            } else {
                let f = Arc::new(Self {
                    path: path.clone(),
                    map_bytes: page_multiple(map_bytes),
                    state: Mutex::new(None),
                });
                files.insert(path, Arc::downgrade(&f));
                f
            }
        };
        {
            let mut st = lock(&file.state);
            let was_open = st.as_ref().is_some_and(|o| o.pid == std::process::id());
            file.ensure(&mut st)?;
            if !was_open {
                *st = None;
            }
        }
        Ok(file)
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `body` in one write transaction (LMDB's writer lock held, this process's mutex too),
    /// committing or aborting as it says. An error aborts.
    pub fn write<T>(
        &self,
        body: impl FnOnce(&Db, &mut RwTxn<'_>, &mut Vec<u8>) -> heed::Result<Finish<T>>,
    ) -> Result<T, RateLimitError> {
        let mut st = lock(&self.state);
        let opened = self.ensure(&mut st).map_err(at_runtime)?;
        opened
            .reserve(self.map_bytes)
            .map_err(|e| self.failed(&heed::Error::Io(e)))?;
        let mut txn = opened.env.write_txn().map_err(|e| self.failed(&e))?;
        match body(&opened.db, &mut txn, &mut opened.cursor).map_err(|e| self.failed(&e))? {
            Finish::Commit(v) => {
                txn.commit().map_err(|e| self.failed(&e))?;
                Ok(v)
            }
            Finish::Abort(v) => {
                txn.abort();
                Ok(v)
            }
        }
    }

    /// Bytes of the file in use: pages up to the highest one ever written (LMDB reuses freed
    /// pages before it extends the file).
    pub fn used_bytes(&self) -> Result<u64, RateLimitError> {
        let mut st = lock(&self.state);
        let opened = self.ensure(&mut st).map_err(at_runtime)?;
        let info = opened.env.info();
        let page = opened.env.unnamed_database_stat().page_size;
        Ok((info.last_page_number as u64 + 1) * u64::from(page))
    }

    /// Closes this process's environment (it is opened again on next use).
    pub fn close(&self) {
        lock(&self.state).take();
    }

    fn failed(&self, e: &heed::Error) -> RateLimitError {
        RateLimitError::HostStore {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// This process's environment, opened now if this process has none.
    fn ensure<'s>(
        &self,
        st: &'s mut MutexGuard<'_, Option<Opened>>,
    ) -> Result<&'s mut Opened, RateLimitError> {
        let pid = std::process::id();
        if st.as_ref().is_some_and(|o| o.pid != pid) {
            // Inherited through a fork this process did not announce: LMDB's handle belongs to
            // the parent. Closing it here touches only this process's (empty) share of the lock
            // table, and frees the path for our own open.
            st.take();
        }
        if st.is_none() {
            let (env, db, reserve) = open_env(&self.path, self.map_bytes)?;
            let page = u64::from(env.unnamed_database_stat().page_size);
            **st = Some(Opened {
                pid,
                env,
                db,
                cursor: Vec::new(),
                reserve,
                page,
            });
        }
        st.as_mut().ok_or_else(|| self.unusable("not open"))
    }

    fn unusable(&self, reason: impl Into<String>) -> RateLimitError {
        unusable(&self.path, reason)
    }
}

/// Closes every store environment of this process: run before `fork()`, so the child inherits
/// none (each side reopens on its next hit).
pub fn close_all() {
    let files: Vec<Arc<HostFile>> = lock(&FILES).values().filter_map(Weak::upgrade).collect();
    for f in files {
        f.close();
    }
}

/// A path that became unusable after start-up (its directory removed, its permissions changed)
/// fails the hit like any other store failure, not as a configuration error.
fn at_runtime(e: RateLimitError) -> RateLimitError {
    match e {
        RateLimitError::HostPath { path, reason } => RateLimitError::HostStore { path, reason },
        other => other,
    }
}

fn unusable(path: &Path, reason: impl Into<String>) -> RateLimitError {
    RateLimitError::HostPath {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn page_multiple(bytes: usize) -> usize {
    const PAGE: usize = 64 * 1024;
    bytes.max(PAGE).div_ceil(PAGE) * PAGE
}

fn absolute(path: &Path) -> Result<PathBuf, RateLimitError> {
    if path.as_os_str().is_empty() {
        return Err(unusable(path, "the path is empty"));
    }
    std::path::absolute(path).map_err(|e| unusable(path, e.to_string()))
}

/// Creates the file's directory (mode 0700) if missing. The default directory lives under a
/// shared temp dir when there is no runtime dir, so there it must be ours and private: another
/// user who created it first could otherwise read or replace the counts.
fn prepare_dir(path: &Path) -> Result<(), RateLimitError> {
    let Some(dir) = path.parent() else {
        return Err(unusable(path, "the path has no directory"));
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| unusable(path, format!("cannot create {}: {e}", dir.display())))?;
    }
    let meta = fs::metadata(dir).map_err(|e| unusable(path, e.to_string()))?;
    if !meta.is_dir() {
        return Err(unusable(
            path,
            format!("{} is not a directory", dir.display()),
        ));
    }
    if dir == default_dir() {
        let me = fs::metadata("/proc/self").map(|m| m.uid()).ok();
        if me.is_some_and(|uid| uid != meta.uid()) || meta.mode() & 0o077 != 0 {
            return Err(unusable(
                path,
                format!(
                    "{} must be a directory of this user with mode 0700 (it has {:o})",
                    dir.display(),
                    meta.mode() & 0o7777
                ),
            ));
        }
    }
    if path.is_dir() {
        return Err(unusable(path, "the path is a directory"));
    }
    Ok(())
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Errors that say the file's contents are bad (as opposed to the path being unusable).
fn is_damage(e: &heed::Error) -> bool {
    matches!(
        e,
        heed::Error::Mdb(
            MdbError::Invalid
                | MdbError::VersionMismatch
                | MdbError::Corrupted
                | MdbError::PageNotFound
                | MdbError::Panic
                | MdbError::BadTxn
                | MdbError::Incompatible
        )
    )
}

type OpenedEnv = (Env<WithoutTls>, Db, Option<(File, u64)>);

/// Opens (creating, or replacing a damaged file) under the `-init` lock.
fn open_env(path: &Path, map_bytes: usize) -> Result<OpenedEnv, RateLimitError> {
    let guard = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(sidecar(path, "-init"))
        .map_err(|e| unusable(path, e.to_string()))?;
    // flock, not fcntl: LMDB holds fcntl locks on its own `-lock` file, and this one is separate.
    flock(&guard, FlockOperation::LockExclusive).map_err(|e| unusable(path, e.to_string()))?;
    let result = match open_fastest(path, map_bytes) {
        Ok(opened) => Ok(opened),
        Err(e) if is_damage(&e) => {
            let aside = sidecar(path, ".damaged");
            warn(&format!(
                "ferrogate: the rate-limit store {} cannot be read ({e}); starting a new one (the old file is kept as {})",
                path.display(),
                aside.display()
            ));
            fs::rename(path, &aside).map_err(|e| unusable(path, e.to_string()))?;
            let _ = fs::remove_file(sidecar(path, "-lock"));
            open_fastest(path, map_bytes).map_err(|e| unusable(path, e.to_string()))
        }
        Err(e) => Err(unusable(path, describe(&e))),
    };
    drop::<File>(guard);
    result
}

fn describe(e: &heed::Error) -> String {
    match e {
        heed::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            format!("permission denied ({io})")
        }
        other => other.to_string(),
    }
}

/// Writable-map mode where the file system can allocate the file's blocks ahead, else plain.
fn open_fastest(path: &Path, map_bytes: usize) -> heed::Result<OpenedEnv> {
    #[cfg(target_os = "linux")]
    {
        let (env, db) = try_open(path, map_bytes, true)?;
        let file = env.try_clone_inner_file()?;
        let mut opened = Opened {
            pid: 0,
            page: u64::from(env.unnamed_database_stat().page_size),
            env,
            db,
            cursor: Vec::new(),
            reserve: Some((file, 0)),
        };
        if opened.reserve(map_bytes).is_ok() {
            let reserve = opened.reserve.take();
            return Ok((opened.env, opened.db, reserve));
        }
        // No fallocate here (or no room even for the margin): writes through pwrite report a
        // full file system as an error.
        drop(opened);
    }
    let (env, db) = try_open(path, map_bytes, false)?;
    Ok((env, db, None))
}

#[allow(unsafe_code)]
fn try_open(path: &Path, map_bytes: usize, write_map: bool) -> heed::Result<(Env<WithoutTls>, Db)> {
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(map_bytes).max_readers(MAX_READERS);
    // SAFETY: NO_SYNC and NO_META_SYNC trade durability across an OS crash (not consistency)
    // for speed, which quota counts can afford (see the module doc); NO_SUB_DIR and NO_READ_AHEAD
    // change only where the file is and how it is read; WRITE_MAP is used only with the blocks
    // allocated ahead (`Opened::reserve`).
    unsafe {
        options.flags(
            EnvFlags::NO_SUB_DIR
                | EnvFlags::NO_SYNC
                | EnvFlags::NO_META_SYNC
                | EnvFlags::NO_READ_AHEAD,
        );
        if write_map {
            options.flags(EnvFlags::WRITE_MAP);
        }
    }
    // SAFETY: heed's registry refuses a second open of one path in this process and `FILES`
    // routes every use of a path to one environment; the file is written only through LMDB
    // (ours, or another process's under LMDB's lock); and an environment is never used in a
    // process other than the one that opened it (`Opened::pid`).
    let env = unsafe { options.open(path)? };
    let stale = env.clear_stale_readers()?;
    if stale > 0 {
        warn(&format!(
            "ferrogate: cleared {stale} reader slot(s) of dead processes in {}",
            path.display()
        ));
    }
    let wtxn = env.write_txn()?;
    let db: Db = env
        .create_databases_and_commit(wtxn, |opener, wtxn| {
            let db: Database<'_, Bytes, Bytes> = opener.create_database(wtxn, None)?;
            check_format(&db, wtxn, path)?;
            Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(db))
        })?
        .unwrap_commit();
    Ok((env, db))
}

fn format_value() -> Vec<u8> {
    let mut v = FORMAT_TAG.to_vec();
    v.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    v
}

/// Writes the format entry into a new file; empties a file of another format.
fn check_format(
    db: &Database<'_, Bytes, Bytes>,
    txn: &mut RwTxn<'_>,
    path: &Path,
) -> heed::Result<()> {
    let want = format_value();
    match db.get(txn, FORMAT_KEY)? {
        Some(v) if v == want.as_slice() => return Ok(()),
        Some(v) => warn(&format!(
            "ferrogate: the rate-limit store {} was written by another format ({}); starting it empty",
            path.display(),
            describe_format(v)
        )),
        None if db.is_empty(txn)? => {}
        None => warn(&format!(
            "ferrogate: the rate-limit store {} holds data of no known format; starting it empty",
            path.display()
        )),
    }
    db.clear(txn)?;
    db.put(txn, FORMAT_KEY, &want)
}

fn describe_format(v: &[u8]) -> String {
    match v
        .strip_prefix(FORMAT_TAG)
        .and_then(|r| <[u8; 4]>::try_from(r).ok())
    {
        Some(n) => format!("version {}", u32::from_le_bytes(n)),
        None => "unrecognised".into(),
    }
}

/// A directory for the tests, removed when dropped (store files have blocks allocated ahead).
#[cfg(test)]
pub(crate) struct Scratch(PathBuf);

#[cfg(test)]
impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("ferrogate-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Self(dir)
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

#[cfg(test)]
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(f: &HostFile, k: &[u8], v: &[u8]) {
        f.write(|db, txn, _| {
            db.put(txn, k, v)?;
            Ok(Finish::Commit(()))
        })
        .unwrap();
    }

    fn get(f: &HostFile, k: &[u8]) -> Option<Vec<u8>> {
        f.write(|db, txn, _| Ok(Finish::Abort(db.get(txn, k)?.map(<[u8]>::to_vec))))
            .unwrap()
    }

    #[test]
    fn creates_private_dir_and_file_and_reopens() {
        let dir = Scratch::new("file-create");
        let path = dir.file("store.mdb");
        let f = HostFile::open(&path, DEFAULT_MAP_BYTES).unwrap();
        put(&f, b"k", b"v");
        let dir_mode = fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(
            fs::metadata(&path).unwrap().mode() & 0o077,
            0,
            "no group/other bits"
        );
        f.close();
        assert_eq!(get(&f, b"k").as_deref(), Some(&b"v"[..]), "reopened lazily");
        let again = HostFile::open(&path, DEFAULT_MAP_BYTES).unwrap();
        assert!(
            Arc::ptr_eq(&f, &again),
            "one environment per path per process"
        );
    }

    #[test]
    fn garbage_file_is_replaced_not_fatal() {
        let dir = Scratch::new("file-garbage");
        let path = dir.file("store.mdb");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, vec![0x5a; 100_000]).unwrap();
        let f = HostFile::open(&path, DEFAULT_MAP_BYTES).unwrap();
        put(&f, b"k", b"v");
        assert_eq!(get(&f, b"k").as_deref(), Some(&b"v"[..]));
        assert!(sidecar(&path, ".damaged").exists());
    }

    #[test]
    fn other_format_is_emptied() {
        let dir = Scratch::new("file-format");
        let path = dir.file("store.mdb");
        let f = HostFile::open(&path, DEFAULT_MAP_BYTES).unwrap();
        put(&f, b"old-entry", b"1");
        let mut old = FORMAT_TAG.to_vec();
        old.extend_from_slice(&0u32.to_le_bytes());
        put(&f, FORMAT_KEY, &old);
        f.close();
        assert_eq!(get(&f, b"old-entry"), None);
        assert_eq!(get(&f, FORMAT_KEY), Some(format_value()));
    }

    #[test]
    fn a_path_gone_after_start_up_fails_hits_not_config() {
        let dir = Scratch::new("file-gone");
        let path = dir.file("store.mdb");
        let f = HostFile::open(&path, DEFAULT_MAP_BYTES).unwrap();
        f.close();
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
        let e = f.write(|_, _, _| Ok(Finish::Commit(()))).unwrap_err();
        assert!(matches!(e, RateLimitError::HostStore { .. }), "{e}");
    }

    #[test]
    fn unusable_paths_are_errors() {
        let dir = Scratch::new("file-unusable");
        let path = dir.file("store.mdb");
        fs::create_dir_all(&path).unwrap();
        let e = HostFile::open(&path, DEFAULT_MAP_BYTES).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let e = HostFile::open(Path::new("/proc/ferrogate/x.mdb"), DEFAULT_MAP_BYTES).unwrap_err();
        assert!(matches!(e, RateLimitError::HostPath { .. }), "{e}");
        let e = HostFile::open(Path::new(""), DEFAULT_MAP_BYTES).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }
}
