/*
 * slow-fs: a FUSE 3 pass-through file system over a backing directory whose fsync is slow (and
 * whose writes, reads and fsyncs can be made slow or made to fail) on demand, for tests that need a
 * real slow or failing disk under the target rather than a mock store. See docs/slow-fs.md.
 *
 *   slow-fs [--fsync-delay-ms=N] [--write-delay-ms=N] [--read-delay-ms=N] [--control=NAME]
 *           [--max-threads=N] [--debug] <backing-dir> <mountpoint>
 *
 * Always in the foreground, so whoever starts it owns its PID; SIGTERM/SIGINT/SIGHUP end the loop
 * (libfuse's handlers), then it unmounts and exits 0. An unmount from outside also ends it.
 *
 * Runtime control without remounting: <mountpoint>/<NAME> (default `.slowfs`, not listed by readdir)
 * takes lines `key=value` (fsync_delay_ms, write_delay_ms, read_delay_ms: milliseconds;
 * fail_write, fail_fsync, fail_read: EIO | ENOSPC | EROFS | EDQUOT | none). One write(2) is parsed
 * as whole lines and applied all at once, or not at all (EINVAL) if any line is bad. Reading it
 * shows the settings and the counters, one `key=value` a line, as they were when it was opened.
 * An injected failure applies to every operation of its kind until it is set back to `none`.
 *
 * Kernel behaviour this relies on (Linux FUSE without FUSE_CAP_WRITEBACK_CACHE, which is turned off
 * below, and without direct_io on regular files):
 * - Writes are write-through: every write(2) on the mount reaches write() below (split into
 *   requests of at most max_write bytes) before the system call returns, and the error we return is
 *   the system call's. The kernel also updates its page cache with the written data.
 * - Reads are served from the page cache when the pages are there: only misses (and readahead)
 *   reach read() below, so read delays and read failures hit uncached data only. The kernel drops a
 *   file's cached pages when it is opened (keep_cache is 0); changing a read setting through the
 *   control file also drops the cached pages of every file so the next read reaches the "disk".
 * - fsync(2)/fdatasync(2) first wait for outstanding writes, then send FUSE_FSYNC (datasync flag
 *   for fdatasync) while holding the inode lock: other writes to the SAME file wait for a slow
 *   fsync; other files, on this mount or elsewhere, do not (the loop is multi-threaded).
 */
#define FUSE_USE_VERSION 312 /* libfuse >= 3.12: fuse_loop_config setters (Debian 12 has 3.14) */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ---- settings and counters (shared by all loop threads) ---- */

static atomic_uint fsync_delay_ms, write_delay_ms, read_delay_ms;
static atomic_int fail_write, fail_fsync, fail_read; /* 0 = none, else a positive errno */

static atomic_ulong n_fsyncs, n_datasyncs, n_writes, n_reads, n_bytes_written, n_bytes_read;
static atomic_ulong n_write_errors, n_fsync_errors, n_read_errors;
static atomic_uint fsyncs_in_flight, max_fsyncs_in_flight;

static int backing_fd = -1;          /* the backing directory, for the *at() calls */
static const char *control_name = ".slowfs";
/* fi->fh of an open control file: a struct control_handle pointer with the top bit set (never set
 * in a user-space pointer on Linux, nor in a file descriptor, which is what fi->fh is otherwise). */
#define CONTROL_BIT (UINT64_C(1) << 63)
#define IS_CONTROL_FH(fh) (((fh) & CONTROL_BIT) != 0)
struct control_handle {
  int len;
  char text[2048]; /* the settings and counters when it was opened: one consistent snapshot */
};

static void sleep_ms(unsigned ms) {
  if (ms == 0) return;
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

/* "/a/b" -> "a/b"; "/" -> "." (relative to backing_fd). */
static const char *rel(const char *path) {
  while (*path == '/') path++;
  return *path ? path : ".";
}

static int is_control(const char *path) {
  return path != NULL && path[0] == '/' && strcmp(path + 1, control_name) == 0;
}

static const struct {
  const char *name;
  int err;
} ERRNAMES[] = {{"none", 0}, {"EIO", EIO}, {"ENOSPC", ENOSPC}, {"EROFS", EROFS}, {"EDQUOT", EDQUOT}};

static const char *errname(int err) {
  for (size_t i = 0; i < sizeof ERRNAMES / sizeof ERRNAMES[0]; i++)
    if (ERRNAMES[i].err == err) return ERRNAMES[i].name;
  return "?";
}

static int parse_err(const char *s, int *out) {
  for (size_t i = 0; i < sizeof ERRNAMES / sizeof ERRNAMES[0]; i++)
    if (strcasecmp(ERRNAMES[i].name, s) == 0) {
      *out = ERRNAMES[i].err;
      return 0;
    }
  return -1;
}

static int parse_ms(const char *s, unsigned *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || v > 3600000UL || s[0] == '-') return -1;
  *out = (unsigned)v;
  return 0;
}

/* The control file's text: settings, then counters. */
static int render(char *buf, size_t size) {
  return snprintf(buf, size,
                  "fsync_delay_ms=%u\nwrite_delay_ms=%u\nread_delay_ms=%u\n"
                  "fail_write=%s\nfail_fsync=%s\nfail_read=%s\n"
                  "fsyncs=%lu\ndatasyncs=%lu\nwrites=%lu\nreads=%lu\n"
                  "bytes_written=%lu\nbytes_read=%lu\n"
                  "write_errors=%lu\nfsync_errors=%lu\nread_errors=%lu\n"
                  "fsyncs_in_flight=%u\nmax_fsyncs_in_flight=%u\n",
                  atomic_load(&fsync_delay_ms), atomic_load(&write_delay_ms), atomic_load(&read_delay_ms),
                  errname(atomic_load(&fail_write)), errname(atomic_load(&fail_fsync)),
                  errname(atomic_load(&fail_read)), atomic_load(&n_fsyncs), atomic_load(&n_datasyncs),
                  atomic_load(&n_writes), atomic_load(&n_reads), atomic_load(&n_bytes_written),
                  atomic_load(&n_bytes_read), atomic_load(&n_write_errors), atomic_load(&n_fsync_errors),
                  atomic_load(&n_read_errors), atomic_load(&fsyncs_in_flight),
                  atomic_load(&max_fsyncs_in_flight));
}

/* Drops the kernel's cached pages of every regular file under `dir` (so reads reach read()). */
static void invalidate_tree(struct fuse *f, const char *dir) {
  int fd = openat(backing_fd, rel(dir), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char p[PATH_MAX];
    int n = snprintf(p, sizeof p, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, e->d_name);
    if (n < 0 || n >= (int)sizeof p) continue;
    if (e->d_type == DT_DIR) invalidate_tree(f, p);
    else if (e->d_type == DT_REG) fuse_invalidate_path(f, p); /* -ENOENT: never looked up; fine */
  }
  closedir(d);
}

static pthread_mutex_t control_lock = PTHREAD_MUTEX_INITIALIZER;

/* Applies a control write: every line valid, or nothing applied and -EINVAL. */
static int control_write_locked(const char *buf, size_t size) {
  unsigned fsd = atomic_load(&fsync_delay_ms), wd = atomic_load(&write_delay_ms),
           rd = atomic_load(&read_delay_ms);
  int fw = atomic_load(&fail_write), ff = atomic_load(&fail_fsync), fr = atomic_load(&fail_read);
  int read_changed = 0;
  char text[4096];
  if (size >= sizeof text) return -EFBIG;
  memcpy(text, buf, size);
  text[size] = '\0';
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    while (*line == ' ' || *line == '\t') line++;
    char *end = line + strlen(line);
    while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) *--end = '\0';
    if (*line == '\0' || *line == '#') continue;
    char *eq = strchr(line, '=');
    if (eq == NULL) {
      fprintf(stderr, "slow-fs: bad control line '%s'\n", line);
      return -EINVAL;
    }
    *eq = '\0';
    const char *k = line, *v = eq + 1;
    int bad;
    if (strcmp(k, "fsync_delay_ms") == 0) bad = parse_ms(v, &fsd);
    else if (strcmp(k, "write_delay_ms") == 0) bad = parse_ms(v, &wd);
    else if (strcmp(k, "read_delay_ms") == 0) bad = parse_ms(v, &rd), read_changed = 1;
    else if (strcmp(k, "fail_write") == 0) bad = parse_err(v, &fw);
    else if (strcmp(k, "fail_fsync") == 0) bad = parse_err(v, &ff);
    else if (strcmp(k, "fail_read") == 0) bad = parse_err(v, &fr), read_changed = 1;
    else bad = -1;
    if (bad) {
      fprintf(stderr, "slow-fs: bad control line '%s=%s'\n", k, v);
      return -EINVAL;
    }
  }
  atomic_store(&fsync_delay_ms, fsd);
  atomic_store(&write_delay_ms, wd);
  atomic_store(&read_delay_ms, rd);
  atomic_store(&fail_write, fw);
  atomic_store(&fail_fsync, ff);
  atomic_store(&fail_read, fr);
  if (read_changed) invalidate_tree(fuse_get_context()->fuse, "/");
  return (int)size;
}

/* One control write at a time: two at once would each start from the old settings. */
static int control_write(const char *buf, size_t size) {
  pthread_mutex_lock(&control_lock);
  int r = control_write_locked(buf, size);
  pthread_mutex_unlock(&control_lock);
  return r;
}

/* ---- file system operations ---- */

static void *sfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
  /* Write-through page cache (see the top of the file); the kernel never holds dirty data. */
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  cfg->use_ino = 1;
  /* The backing directory may change behind our back (tests prepare and check files there). */
  cfg->entry_timeout = 0;
  cfg->attr_timeout = 0;
  cfg->negative_timeout = 0;
  /* All I/O goes through fi->fh, so an unlinked open file needs no hidden rename. */
  cfg->hard_remove = 1;
  cfg->nullpath_ok = 1;
  cfg->direct_io = 0;
  cfg->kernel_cache = 0;
  return NULL;
}

static int sfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
  if (is_control(path) || (fi && IS_CONTROL_FH(fi->fh))) {
    /* Size 0, like /proc: readers read to end of file, which is the end of their snapshot. */
    memset(st, 0, sizeof *st);
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    st->st_uid = getuid();
    st->st_gid = getgid();
    return 0;
  }
  /* By name when there is one; the handle (always a backing file's descriptor: the kernel sends one
   * only for regular files) when the file was unlinked while open. */
  int r = path ? fstatat(backing_fd, rel(path), st, AT_SYMLINK_NOFOLLOW) : fstat((int)fi->fh, st);
  return r == -1 ? -errno : 0;
}

static int sfs_opendir(const char *path, struct fuse_file_info *fi) {
  int fd = openat(backing_fd, rel(path), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return -errno;
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    int e = errno;
    close(fd);
    return -e;
  }
  fi->fh = (uint64_t)(uintptr_t)d;
  return 0;
}

/* Every entry in one call (offset 0 to the filler: libfuse buffers them); `path` may be NULL. */
static int sfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                       struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
  (void)path, (void)off, (void)flags;
  DIR *d = (DIR *)(uintptr_t)fi->fh;
  rewinddir(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    struct stat st = {.st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type)};
    if (filler(buf, e->d_name, &st, 0, 0)) break;
  }
  return 0;
}

static int sfs_releasedir(const char *path, struct fuse_file_info *fi) {
  (void)path;
  closedir((DIR *)(uintptr_t)fi->fh);
  return 0;
}

static int sfs_mkdir(const char *path, mode_t mode) {
  return mkdirat(backing_fd, rel(path), mode) == -1 ? -errno : 0;
}

static int sfs_rmdir(const char *path) {
  return unlinkat(backing_fd, rel(path), AT_REMOVEDIR) == -1 ? -errno : 0;
}

static int sfs_unlink(const char *path) {
  if (is_control(path)) return -EPERM;
  return unlinkat(backing_fd, rel(path), 0) == -1 ? -errno : 0;
}

static int sfs_rename(const char *from, const char *to, unsigned int flags) {
  if (is_control(from) || is_control(to)) return -EPERM;
  return renameat2(backing_fd, rel(from), backing_fd, rel(to), flags) == -1 ? -errno : 0;
}

static int sfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) {
  if (is_control(path)) return 0;
  int r = fi ? fchmod((int)fi->fh, mode) : fchmodat(backing_fd, rel(path), mode, 0);
  return r == -1 ? -errno : 0;
}

static int sfs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
  if (is_control(path)) return 0;
  int r = fi ? futimens((int)fi->fh, tv) : utimensat(backing_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW);
  return r == -1 ? -errno : 0;
}

static int sfs_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
  if (is_control(path) || (fi && IS_CONTROL_FH(fi->fh))) return 0; /* O_TRUNC of the control file */
  if (fi) return ftruncate((int)fi->fh, size) == -1 ? -errno : 0;
  int fd = openat(backing_fd, rel(path), O_WRONLY);
  if (fd < 0) return -errno;
  int r = ftruncate(fd, size) == -1 ? -errno : 0;
  close(fd);
  return r;
}

/* Open flags for the backing file: O_DIRECT would need aligned buffers in this daemon and adds
 * nothing (durability comes from fsync below), so it is dropped; O_SYNC/O_DSYNC pass through. */
static int backing_flags(int flags) {
  return flags & ~O_DIRECT;
}

static int sfs_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
  if (is_control(path)) return -EEXIST;
  int fd = openat(backing_fd, rel(path), backing_flags(fi->flags) | O_CREAT, mode);
  if (fd < 0) return -errno;
  fi->fh = (uint64_t)fd;
  fi->direct_io = 0;
  fi->keep_cache = 0;
  return 0;
}

static int sfs_open(const char *path, struct fuse_file_info *fi) {
  if (is_control(path)) {
    struct control_handle *h = malloc(sizeof *h);
    if (h == NULL) return -ENOMEM;
    h->len = render(h->text, sizeof h->text);
    fi->fh = (uint64_t)(uintptr_t)h | CONTROL_BIT;
    fi->direct_io = 1; /* every read renders the current text; every write reaches control_write */
    fi->nonseekable = 0;
    return 0;
  }
  int fd = openat(backing_fd, rel(path), backing_flags(fi->flags));
  if (fd < 0) return -errno;
  fi->fh = (uint64_t)fd;
  fi->direct_io = 0;
  fi->keep_cache = 0;
  return 0;
}

static int sfs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)path;
  if (IS_CONTROL_FH(fi->fh)) {
    const struct control_handle *h = (void *)(uintptr_t)(fi->fh & ~CONTROL_BIT);
    if (off >= h->len) return 0;
    size_t len = (size_t)(h->len - off) < size ? (size_t)(h->len - off) : size;
    memcpy(buf, h->text + off, len);
    return (int)len;
  }
  sleep_ms(atomic_load(&read_delay_ms));
  int err = atomic_load(&fail_read);
  if (err) {
    atomic_fetch_add(&n_read_errors, 1);
    return -err;
  }
  atomic_fetch_add(&n_reads, 1);
  size_t done = 0;
  while (done < size) { /* a short read would mean end of file to the kernel */
    ssize_t r = pread((int)fi->fh, buf + done, size - done, off + (off_t)done);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (done) break;
      return -errno;
    }
    if (r == 0) break;
    done += (size_t)r;
  }
  atomic_fetch_add(&n_bytes_read, done);
  return (int)done;
}

static int sfs_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)path;
  if (IS_CONTROL_FH(fi->fh)) return control_write(buf, size);
  sleep_ms(atomic_load(&write_delay_ms));
  int err = atomic_load(&fail_write);
  if (err) { /* nothing is written: the device refused it */
    atomic_fetch_add(&n_write_errors, 1);
    return -err;
  }
  atomic_fetch_add(&n_writes, 1);
  size_t done = 0;
  while (done < size) {
    ssize_t r = pwrite((int)fi->fh, buf + done, size - done, off + (off_t)done);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (done) break;
      return -errno;
    }
    done += (size_t)r;
  }
  atomic_fetch_add(&n_bytes_written, done);
  return (int)done;
}

static int sfs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi) {
  (void)path;
  if (IS_CONTROL_FH(fi->fh)) return -EOPNOTSUPP;
  int err = atomic_load(&fail_write);
  if (err) {
    atomic_fetch_add(&n_write_errors, 1);
    return -err;
  }
  return fallocate((int)fi->fh, mode, off, len) == -1 ? -errno : 0;
}

static int sfs_statfs(const char *path, struct statvfs *st) {
  (void)path;
  return fstatvfs(backing_fd, st) == -1 ? -errno : 0;
}

static int sfs_flush(const char *path, struct fuse_file_info *fi) {
  /* close(2) on the mount; nothing is buffered here (writes went straight to the backing file). */
  (void)path, (void)fi;
  return 0;
}

static int sfs_release(const char *path, struct fuse_file_info *fi) {
  (void)path;
  if (IS_CONTROL_FH(fi->fh)) free((void *)(uintptr_t)(fi->fh & ~CONTROL_BIT));
  else close((int)fi->fh);
  return 0;
}

static int sfs_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
  (void)path;
  if (IS_CONTROL_FH(fi->fh)) return 0;
  unsigned now = atomic_fetch_add(&fsyncs_in_flight, 1) + 1;
  for (unsigned m = atomic_load(&max_fsyncs_in_flight); now > m;) {
    if (atomic_compare_exchange_weak(&max_fsyncs_in_flight, &m, now)) break;
  }
  int r = 0;
  int err = atomic_load(&fail_fsync);
  if (err) { /* a failing device: as slow as configured, then the error, nothing made durable */
    sleep_ms(atomic_load(&fsync_delay_ms));
    atomic_fetch_add(&n_fsync_errors, 1);
    r = -err;
  } else {
    atomic_fetch_add(&n_fsyncs, 1);
    if (datasync) atomic_fetch_add(&n_datasyncs, 1);
    /* Real durability first (the backing file's data on its device), then the slowness. */
    if ((datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh)) == -1) r = -errno;
    sleep_ms(atomic_load(&fsync_delay_ms));
  }
  atomic_fetch_sub(&fsyncs_in_flight, 1);
  return r;
}

static const struct fuse_operations ops = {
    .init = sfs_init,
    .getattr = sfs_getattr,
    .opendir = sfs_opendir,
    .readdir = sfs_readdir,
    .releasedir = sfs_releasedir,
    .mkdir = sfs_mkdir,
    .rmdir = sfs_rmdir,
    .unlink = sfs_unlink,
    .rename = sfs_rename,
    .chmod = sfs_chmod,
    .utimens = sfs_utimens,
    .truncate = sfs_truncate,
    .create = sfs_create,
    .open = sfs_open,
    .read = sfs_read,
    .write = sfs_write,
    .fallocate = sfs_fallocate,
    .statfs = sfs_statfs,
    .flush = sfs_flush,
    .release = sfs_release,
    .fsync = sfs_fsync,
};

/* ---- command line ---- */

static void usage(FILE *to) {
  fprintf(to,
          "usage: slow-fs [--fsync-delay-ms=N] [--write-delay-ms=N] [--read-delay-ms=N]\n"
          "               [--control=NAME] [--max-threads=N] [--debug] <backing-dir> <mountpoint>\n");
}

int main(int argc, char *argv[]) {
  static const struct option longopts[] = {
      {"fsync-delay-ms", required_argument, NULL, 'F'}, {"write-delay-ms", required_argument, NULL, 'W'},
      {"read-delay-ms", required_argument, NULL, 'R'},  {"control", required_argument, NULL, 'c'},
      {"max-threads", required_argument, NULL, 't'},    {"debug", no_argument, NULL, 'd'},
      {"help", no_argument, NULL, 'h'},                 {NULL, 0, NULL, 0},
  };
  unsigned max_threads = 32;
  int debug = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+dh", longopts, NULL)) != -1) {
    unsigned v = 0;
    if (c == 'F' || c == 'W' || c == 'R' || c == 't') {
      if (parse_ms(optarg, &v) || (c == 't' && v == 0)) {
        fprintf(stderr, "slow-fs: bad value '%s'\n", optarg);
        return 2;
      }
    }
    switch (c) {
      case 'F': atomic_store(&fsync_delay_ms, v); break;
      case 'W': atomic_store(&write_delay_ms, v); break;
      case 'R': atomic_store(&read_delay_ms, v); break;
      case 't': max_threads = v; break;
      case 'c':
        if (optarg[0] == '\0' || strchr(optarg, '/')) {
          fprintf(stderr, "slow-fs: --control takes a file name, not a path\n");
          return 2;
        }
        control_name = optarg;
        break;
      case 'd': debug = 1; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (argc - optind != 2) {
    usage(stderr);
    return 2;
  }
  const char *backing = argv[optind], *mountpoint = argv[optind + 1];
  backing_fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (backing_fd < 0) {
    fprintf(stderr, "slow-fs: backing directory %s: %s\n", backing, strerror(errno));
    return 1;
  }
  char opts[PATH_MAX + 64];
  /* fsname shows the backing directory in /proc/self/mountinfo (a comma would split the option
   * string: plain name then); subtype makes the type fuse.slowfs. */
  if (strchr(backing, ',')) snprintf(opts, sizeof opts, "fsname=slowfs,subtype=slowfs");
  else snprintf(opts, sizeof opts, "fsname=slowfs:%s,subtype=slowfs", backing);
  char *fargv[] = {argv[0], "-o", opts, debug ? "-d" : NULL, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(debug ? 4 : 3, fargv);

  /* fuse_main() would do the same, but it exits 8 when a signal ends the loop; SIGTERM is how the
   * tests stop us, and that is a clean exit. */
  int rc = 1;
  struct fuse *f = fuse_new(&args, &ops, sizeof ops, NULL);
  if (f == NULL) goto out;
  if (fuse_mount(f, mountpoint) != 0) goto out_destroy;
  struct fuse_session *se = fuse_get_session(f);
  if (fuse_set_signal_handlers(se) != 0) goto out_unmount;
  struct fuse_loop_config *cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, max_threads);
  fuse_loop_cfg_set_idle_threads(cfg, max_threads < 10 ? max_threads : 10);
  /* Multi-threaded: a request sleeping in fsync ties up one thread, not the file system. */
  int r = fuse_loop_mt(f, cfg);
  fuse_loop_cfg_destroy(cfg);
  fuse_remove_signal_handlers(se);
  /* 0: unmounted from outside (fusermount3 -u / umount); a signal number: SIGTERM and friends. */
  rc = (r == 0 || r == SIGTERM || r == SIGINT || r == SIGHUP) ? 0 : 1;
  if (rc) fprintf(stderr, "slow-fs: loop ended with %d\n", r);
out_unmount:
  fuse_unmount(f);
out_destroy:
  fuse_destroy(f);
out:
  fuse_opt_free_args(&args);
  close(backing_fd);
  return rc;
}
