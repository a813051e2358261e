/*
 * Shared-memory primitives for pyswoole: Table, Atomic, AtomicLong and Lock.
 *
 * Every object maps its memory with mmap(MAP_SHARED | MAP_ANONYMOUS), so every process forked after
 * the mapping was made sees the same bytes. Crash safety rests on robust, process-shared pthread
 * mutexes: when a holder dies, the next locker gets EOWNERDEAD and repairs what the dead one left.
 *
 * Table layout (one mapping):
 *   header | index (buckets x u64) | free-row stack (size x u32) | journal (one row image) | rows
 * Rows live in a pool of exactly `size` rows; the index is an open-addressing hash table of
 * (fingerprint << 32 | row + 2) entries with 2 x size buckets, so any `size` keys fit.
 * Writers serialise on one robust mutex and journal the row they touch; readers take no lock and
 * validate a per-row sequence counter (seqlock) and a table-wide epoch (odd while the index is
 * rebuilt), falling back to the lock when a counter stays odd (a writer that died mid-write).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pyswoole.shm assumes a little-endian machine (an Atomic's 32-bit value is the low word of its 64-bit slot)"
#endif

static PyObject *TableFullError;

/* ------------------------------------------------------------------------------------------------
 * Shared helpers
 * --------------------------------------------------------------------------------------------- */

static void *shared_alloc(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    return p;
}

static int robust_mutex_init(pthread_mutex_t *m, int kind)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc == 0)
        rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutexattr_settype(&attr, kind);
    if (rc == 0)
        rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static double monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timespec timespec_from(double seconds)
{
    struct timespec ts;
    if (seconds < 0)
        seconds = 0;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ------------------------------------------------------------------------------------------------
 * Table
 * --------------------------------------------------------------------------------------------- */

enum { TYPE_INT = 1, TYPE_FLOAT = 2, TYPE_STRING = 3 };

#define KEY_MAX 63
#define ENTRY_EMPTY 0ULL
#define ENTRY_TOMBSTONE 1ULL
#define STRING_IS_BYTES 0x80000000u
#define STRING_HEADER 4
#define STACK_BUFFER 4096
#define READ_SPINS 64
#define READ_TRIES 2000
#define LOCK_SPINS 100

enum { JOURNAL_IDLE = 0, JOURNAL_WRITING = 1, JOURNAL_WRITTEN = 2 };
enum { READ_RETRY = -1, READ_MISSING = 0, READ_FOUND = 1 };

typedef struct {
    uint32_t seq; /* odd while the row is being written */
    uint8_t used;
    uint8_t key_len;
    uint8_t key_is_bytes;
    uint8_t reserved;
    char key[KEY_MAX + 1];
} row_header;

typedef struct {
    uint32_t epoch; /* odd while the index is rebuilt; read by every reader, so alone on its line */
    _Alignas(64) pthread_mutex_t lock;
    uint32_t count;
    uint32_t tombstones;
    uint32_t free_top;
    uint32_t journal_state;
    uint32_t journal_row;
    uint64_t rebuilds;
    uint64_t recoveries;
} table_header;

typedef struct {
    PyObject *name;
    int type;
    uint32_t offset;
    uint32_t size; /* capacity in bytes for strings, 8 for numbers */
    int truncate;
} column_def;

typedef struct {
    PyObject_HEAD
    uint32_t size;
    column_def *columns;
    Py_ssize_t ncols;
    PyObject *column_index; /* name -> position */
    uint32_t data_size;
    uint32_t stride;
    uint32_t buckets;
    char *base;
    size_t mem_size;
    table_header *hdr;
    uint64_t *index;
    uint32_t *free_rows;
    char *journal;
    char *rows;
} TableObject;

typedef struct {
    const char *data;
    Py_ssize_t len;
    uint8_t is_bytes;
    uint64_t hash;
} table_key;

#define ROW(t, i) ((row_header *)((t)->rows + (size_t)(i) * (t)->stride))
#define ROW_DATA(r) ((char *)(r) + sizeof(row_header))

static uint64_t hash_bytes(const char *p, Py_ssize_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)n * 0xFF51AFD7ED558CCDULL);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t v = 0;
        memcpy(&v, p, (size_t)n);
        h = (h ^ v) * 0xC4CEB9FE1A85EC53ULL;
        h ^= h >> 29;
    }
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint32_t home_bucket(const TableObject *t, uint64_t h)
{
    return (uint32_t)(((uint64_t)(uint32_t)h * t->buckets) >> 32);
}

static inline uint64_t make_entry(uint64_t h, uint32_t row) { return (h & 0xFFFFFFFF00000000ULL) | (uint64_t)(row + 2); }

static int parse_key(PyObject *obj, table_key *key)
{
    if (PyUnicode_Check(obj)) {
        key->data = PyUnicode_AsUTF8AndSize(obj, &key->len);
        if (key->data == NULL)
            return -1;
        key->is_bytes = 0;
    }
    else if (PyBytes_Check(obj)) {
        key->data = PyBytes_AS_STRING(obj);
        key->len = PyBytes_GET_SIZE(obj);
        key->is_bytes = 1;
    }
    else {
        PyErr_Format(PyExc_TypeError, "table key must be str or bytes, not %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (key->len > KEY_MAX) {
        PyErr_Format(PyExc_ValueError, "table key is %zd bytes long; keys are limited to %d bytes", key->len,
                     KEY_MAX);
        return -1;
    }
    key->hash = hash_bytes(key->data, key->len);
    return 0;
}

static int table_ready(TableObject *t)
{
    if (t->base == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the table is not created yet: call create() first");
        return -1;
    }
    return 0;
}

static Py_ssize_t column_position(TableObject *t, PyObject *name)
{
    for (Py_ssize_t i = 0; i < t->ncols && i < 8; i++) /* names are interned: usually the same object */
        if (t->columns[i].name == name)
            return i;
    PyObject *pos = PyDict_GetItemWithError(t->column_index, name);
    if (pos == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_KeyError, "table has no column %R", name);
        return -1;
    }
    return PyLong_AsSsize_t(pos);
}

/* --- index maintenance (all under the lock) ---------------------------------------------------- */

/* Index slot holding `key`, or -1; *insert_at gets the slot a new entry for it would take. */
static int64_t locate(TableObject *t, const table_key *key, uint32_t *insert_at)
{
    uint32_t pos = home_bucket(t, key->hash);
    uint32_t fingerprint = (uint32_t)(key->hash >> 32);
    int64_t tombstone = -1;
    for (uint32_t probes = 0; probes < t->buckets; probes++) {
        uint64_t e = t->index[pos];
        if (e == ENTRY_EMPTY)
            break;
        if (e == ENTRY_TOMBSTONE) {
            if (tombstone < 0)
                tombstone = pos;
        }
        else if ((uint32_t)(e >> 32) == fingerprint) {
            row_header *r = ROW(t, (uint32_t)e - 2);
            if (r->key_len == key->len && memcmp(r->key, key->data, (size_t)key->len) == 0)
                return pos;
        }
        if (++pos == t->buckets)
            pos = 0;
    }
    /* The load limit keeps an empty slot in every probe sequence, so `pos` is empty here. */
    *insert_at = tombstone >= 0 ? (uint32_t)tombstone : pos;
    return -1;
}

/* Rebuild the index from the rows (and, after a crash, the free stack and the count). */
static void rebuild_index(TableObject *t)
{
    table_header *h = t->hdr;
    memset(t->index, 0, (size_t)t->buckets * sizeof(uint64_t));
    uint32_t count = 0, top = 0;
    for (uint32_t i = t->size; i-- > 0;) {
        row_header *r = ROW(t, i);
        if (!r->used) {
            t->free_rows[top++] = i;
            continue;
        }
        uint64_t hash = hash_bytes(r->key, r->key_len);
        uint32_t pos = home_bucket(t, hash);
        while (t->index[pos] != ENTRY_EMPTY)
            if (++pos == t->buckets)
                pos = 0;
        t->index[pos] = make_entry(hash, i);
        count++;
    }
    h->count = count;
    h->free_top = top;
    h->tombstones = 0;
}

static void epoch_begin(table_header *h)
{
    if ((h->epoch & 1) == 0)
        __atomic_store_n(&h->epoch, h->epoch + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void epoch_end(table_header *h) { __atomic_store_n(&h->epoch, h->epoch + 1, __ATOMIC_RELEASE); }

/* Called by the locker that found the previous holder dead: undo its half-written row, rebuild. */
static void table_recover(TableObject *t)
{
    table_header *h = t->hdr;
    epoch_begin(h);
    if (h->journal_state == JOURNAL_WRITING && h->journal_row < t->size) {
        row_header *r = ROW(t, h->journal_row);
        uint32_t seq = r->seq | 1;
        __atomic_store_n(&r->seq, seq, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        memcpy((char *)r + sizeof(uint32_t), t->journal + sizeof(uint32_t), t->stride - sizeof(uint32_t));
        __atomic_store_n(&r->seq, seq + 1, __ATOMIC_RELEASE);
    }
    h->journal_state = JOURNAL_IDLE;
    for (uint32_t i = 0; i < t->size; i++) {
        row_header *r = ROW(t, i);
        if (r->seq & 1)
            __atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
    }
    rebuild_index(t);
    h->recoveries++;
    epoch_end(h);
}

static void compact_index(TableObject *t)
{
    epoch_begin(t->hdr);
    rebuild_index(t);
    t->hdr->rebuilds++;
    epoch_end(t->hdr);
}

static int table_lock(TableObject *t)
{
    pthread_mutex_t *m = &t->hdr->lock;
    int rc = pthread_mutex_trylock(m);
    for (int i = 0; rc == EBUSY && i < LOCK_SPINS; i++) {
        cpu_relax();
        rc = pthread_mutex_trylock(m);
    }
    if (rc == EBUSY)
        rc = pthread_mutex_lock(m);
    if (rc == EOWNERDEAD) {
        table_recover(t);
        pthread_mutex_consistent(m);
        rc = 0;
    }
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static inline void table_unlock(TableObject *t) { pthread_mutex_unlock(&t->hdr->lock); }

/* Save the row's image, then mark it odd: a crash from here on is rolled back by table_recover. */
static void write_begin(TableObject *t, uint32_t ri)
{
    row_header *r = ROW(t, ri);
    memcpy(t->journal, r, t->stride);
    t->hdr->journal_row = ri;
    __atomic_store_n(&t->hdr->journal_state, JOURNAL_WRITING, __ATOMIC_RELEASE);
    __atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

/* The row is complete: readers may use it, and recovery keeps it. */
static void write_commit(TableObject *t, uint32_t ri)
{
    row_header *r = ROW(t, ri);
    __atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&t->hdr->journal_state, JOURNAL_WRITTEN, __ATOMIC_RELEASE);
}

static void write_end(TableObject *t)
{
    __atomic_store_n(&t->hdr->journal_state, JOURNAL_IDLE, __ATOMIC_RELEASE);
    if ((uint64_t)(t->hdr->count + t->hdr->tombstones) * 4 > (uint64_t)t->buckets * 3)
        compact_index(t);
}

/* Take a free row for `key` and open it for writing (zeroed); -1 when the table is full. */
static int64_t row_insert_begin(TableObject *t, const table_key *key)
{
    table_header *h = t->hdr;
    if (h->free_top == 0) {
        PyErr_Format(TableFullError, "table is full (%u rows in use): delete rows or create a larger Table", t->size);
        return -1;
    }
    uint32_t ri = t->free_rows[h->free_top - 1];
    row_header *r = ROW(t, ri);
    write_begin(t, ri);
    h->free_top--;
    r->used = 1;
    r->key_len = (uint8_t)key->len;
    r->key_is_bytes = key->is_bytes;
    memcpy(r->key, key->data, (size_t)key->len);
    memset(ROW_DATA(r), 0, t->data_size);
    return ri;
}

static void row_insert_publish(TableObject *t, const table_key *key, uint32_t ri, uint32_t slot)
{
    table_header *h = t->hdr;
    if (t->index[slot] == ENTRY_TOMBSTONE)
        h->tombstones--;
    __atomic_store_n(&t->index[slot], make_entry(key->hash, ri), __ATOMIC_RELEASE);
    h->count++;
}

/* --- lock-free reads ----------------------------------------------------------------------------- */

/* Copy `len` bytes at `offset` of the row of `key` into `out`, as one consistent snapshot. */
static int read_attempt(TableObject *t, const table_key *key, uint32_t offset, uint32_t len, char *out)
{
    table_header *h = t->hdr;
    uint32_t epoch = __atomic_load_n(&h->epoch, __ATOMIC_ACQUIRE);
    if (epoch & 1)
        return READ_RETRY;
    uint32_t pos = home_bucket(t, key->hash);
    uint32_t fingerprint = (uint32_t)(key->hash >> 32);
    int result = READ_MISSING;
    for (uint32_t probes = 0; probes < t->buckets; probes++) {
        uint64_t e = __atomic_load_n(&t->index[pos], __ATOMIC_ACQUIRE);
        if (e == ENTRY_EMPTY)
            break;
        if (e != ENTRY_TOMBSTONE && (uint32_t)(e >> 32) == fingerprint) {
            uint32_t ri = (uint32_t)e - 2;
            if (ri >= t->size)
                return READ_RETRY;
            row_header *r = ROW(t, ri);
            uint32_t seq = __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE);
            if (seq & 1)
                return READ_RETRY;
            int match = r->used && r->key_len == key->len && memcmp(r->key, key->data, (size_t)key->len) == 0;
            if (match && len)
                memcpy(out, ROW_DATA(r) + offset, len);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&r->seq, __ATOMIC_RELAXED) != seq)
                return READ_RETRY;
            if (match) {
                result = READ_FOUND;
                break;
            }
        }
        if (++pos == t->buckets)
            pos = 0;
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&h->epoch, __ATOMIC_RELAXED) != epoch)
        return READ_RETRY;
    return result;
}

static void read_backoff(int attempt)
{
    if (attempt < READ_SPINS)
        cpu_relax();
    else
        sched_yield();
}

/* READ_FOUND / READ_MISSING, or -2 with an exception set. Falls back to the lock (which repairs
 * what a dead writer left) when a row or the index stays in flux. */
static int read_by_key(TableObject *t, const table_key *key, uint32_t offset, uint32_t len, char *out)
{
    for (int attempt = 0; attempt < READ_TRIES; attempt++) {
        int rc = read_attempt(t, key, offset, len, out);
        if (rc != READ_RETRY)
            return rc;
        read_backoff(attempt);
    }
    if (table_lock(t) < 0)
        return -2;
    int rc = read_attempt(t, key, offset, len, out);
    table_unlock(t);
    if (rc == READ_RETRY) {
        PyErr_SetString(PyExc_RuntimeError, "table row changed while the table lock was held");
        return -2;
    }
    return rc;
}

/* Snapshot row `ri` (key and data). READ_MISSING for a free row. */
static int snapshot_attempt(TableObject *t, uint32_t ri, row_header *key_out, char *data_out)
{
    row_header *r = ROW(t, ri);
    uint32_t seq = __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE);
    if (seq & 1)
        return READ_RETRY;
    int used = r->used;
    if (used) {
        memcpy(key_out, r, sizeof(row_header));
        memcpy(data_out, ROW_DATA(r), t->data_size);
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&r->seq, __ATOMIC_RELAXED) != seq)
        return READ_RETRY;
    return used ? READ_FOUND : READ_MISSING;
}

static int snapshot_row(TableObject *t, uint32_t ri, row_header *key_out, char *data_out)
{
    for (int attempt = 0; attempt < READ_TRIES; attempt++) {
        int rc = snapshot_attempt(t, ri, key_out, data_out);
        if (rc != READ_RETRY)
            return rc;
        read_backoff(attempt);
    }
    if (table_lock(t) < 0)
        return -2;
    int rc = snapshot_attempt(t, ri, key_out, data_out);
    table_unlock(t);
    return rc;
}

/* --- value conversion ------------------------------------------------------------------------- */

static PyObject *column_value(const column_def *c, const char *data)
{
    const char *p = data + c->offset;
    if (c->type == TYPE_INT) {
        int64_t v;
        memcpy(&v, p, sizeof v);
        return PyLong_FromLongLong(v);
    }
    if (c->type == TYPE_FLOAT) {
        double v;
        memcpy(&v, p, sizeof v);
        return PyFloat_FromDouble(v);
    }
    uint32_t header;
    memcpy(&header, p, sizeof header);
    uint32_t len = header & ~STRING_IS_BYTES;
    if (len > c->size)
        len = c->size;
    if (header & STRING_IS_BYTES)
        return PyBytes_FromStringAndSize(p + STRING_HEADER, len);
    return PyUnicode_DecodeUTF8(p + STRING_HEADER, len, "replace");
}

static PyObject *row_dict(TableObject *t, const char *data)
{
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < t->ncols; i++) {
        PyObject *v = column_value(&t->columns[i], data);
        if (v == NULL || PyDict_SetItem(d, t->columns[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    return d;
}

static PyObject *row_key(const row_header *r)
{
    if (r->key_is_bytes)
        return PyBytes_FromStringAndSize(r->key, r->key_len);
    return PyUnicode_DecodeUTF8(r->key, r->key_len, "replace");
}

/* Encode `value` for column `c` into `out` (the column's bytes). Returns bytes to copy, or -1. */
static Py_ssize_t encode_value(const column_def *c, PyObject *value, char *out)
{
    if (c->type == TYPE_INT) {
        if (!PyLong_Check(value)) {
            PyErr_Format(PyExc_TypeError, "column %R takes int, not %.100s", c->name, Py_TYPE(value)->tp_name);
            return -1;
        }
        int64_t v = PyLong_AsLongLong(value);
        if (v == -1 && PyErr_Occurred())
            return -1;
        memcpy(out, &v, sizeof v);
        return sizeof v;
    }
    if (c->type == TYPE_FLOAT) {
        if (!PyFloat_Check(value) && !PyLong_Check(value)) {
            PyErr_Format(PyExc_TypeError, "column %R takes float, not %.100s", c->name, Py_TYPE(value)->tp_name);
            return -1;
        }
        double v = PyFloat_AsDouble(value);
        if (v == -1.0 && PyErr_Occurred())
            return -1;
        memcpy(out, &v, sizeof v);
        return sizeof v;
    }
    const char *data;
    Py_ssize_t len;
    uint32_t flag = 0;
    if (PyUnicode_Check(value)) {
        data = PyUnicode_AsUTF8AndSize(value, &len);
        if (data == NULL)
            return -1;
    }
    else if (PyBytes_Check(value)) {
        data = PyBytes_AS_STRING(value);
        len = PyBytes_GET_SIZE(value);
        flag = STRING_IS_BYTES;
    }
    else {
        PyErr_Format(PyExc_TypeError, "column %R takes str or bytes, not %.100s", c->name,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    if (len > (Py_ssize_t)c->size) {
        if (!c->truncate) {
            PyErr_Format(PyExc_ValueError, "value for column %R is %zd bytes; the column holds %u", c->name, len,
                         c->size);
            return -1;
        }
        len = c->size;
        if (!flag) /* cut on a UTF-8 character boundary */
            while (len > 0 && ((unsigned char)data[len] & 0xC0) == 0x80)
                len--;
    }
    uint32_t header = (uint32_t)len | flag;
    memcpy(out, &header, sizeof header);
    memcpy(out + STRING_HEADER, data, (size_t)len);
    return STRING_HEADER + len;
}

/* A scratch buffer for one row's data: on the stack unless the row is large. */
typedef struct {
    char stack[STACK_BUFFER];
    char *data;
} row_buffer;

static int row_buffer_init(row_buffer *b, size_t size)
{
    if (size <= STACK_BUFFER) {
        b->data = b->stack;
        return 0;
    }
    b->data = PyMem_Malloc(size);
    if (b->data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void row_buffer_free(row_buffer *b)
{
    if (b->data != b->stack)
        PyMem_Free(b->data);
}

/* --- Python methods ---------------------------------------------------------------------------- */

static int Table_init(TableObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"size", NULL};
    Py_ssize_t size;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n:Table", kwlist, &size))
        return -1;
    if (self->column_index != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Table.__init__ called twice");
        return -1;
    }
    if (size < 1 || size > (1 << 30)) {
        PyErr_Format(PyExc_ValueError, "table size must be between 1 and %d, not %zd", 1 << 30, size);
        return -1;
    }
    self->size = (uint32_t)size;
    self->column_index = PyDict_New();
    return self->column_index == NULL ? -1 : 0;
}

static void Table_dealloc(TableObject *self)
{
    if (self->base != NULL)
        munmap(self->base, self->mem_size);
    for (Py_ssize_t i = 0; i < self->ncols; i++)
        Py_DECREF(self->columns[i].name);
    PyMem_Free(self->columns);
    Py_XDECREF(self->column_index);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Table_column(TableObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "type", "size", "truncate", NULL};
    PyObject *name;
    int type;
    Py_ssize_t size = 0;
    int truncate = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Ui|n$p:column", kwlist, &name, &type, &size, &truncate))
        return NULL;
    if (self->column_index == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Table.__init__ was not called");
        return NULL;
    }
    if (self->base != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "columns cannot be added after create()");
        return NULL;
    }
    if (PyDict_Contains(self->column_index, name)) {
        PyErr_Format(PyExc_ValueError, "column %R is already defined", name);
        return NULL;
    }
    uint32_t width;
    if (type == TYPE_INT || type == TYPE_FLOAT) {
        width = 8;
    }
    else if (type == TYPE_STRING) {
        if (size < 1 || size > (1 << 20)) {
            PyErr_Format(PyExc_ValueError, "string column %R needs a size between 1 and %d bytes", name, 1 << 20);
            return NULL;
        }
        width = (uint32_t)size;
    }
    else {
        PyErr_Format(PyExc_ValueError, "unknown column type %d (use TYPE_INT, TYPE_FLOAT or TYPE_STRING)", type);
        return NULL;
    }
    column_def *cols = PyMem_Realloc(self->columns, sizeof(column_def) * (size_t)(self->ncols + 1));
    if (cols == NULL)
        return PyErr_NoMemory();
    self->columns = cols;
    PyObject *pos = PyLong_FromSsize_t(self->ncols);
    if (pos == NULL || PyDict_SetItem(self->column_index, name, pos) < 0) {
        Py_XDECREF(pos);
        return NULL;
    }
    Py_DECREF(pos);
    column_def *c = &cols[self->ncols++];
    Py_INCREF(name);
    PyUnicode_InternInPlace(&name);
    c->name = name;
    c->type = type;
    c->size = width;
    c->truncate = truncate;
    c->offset = self->data_size;
    uint32_t stored = type == TYPE_STRING ? STRING_HEADER + width : width;
    self->data_size += (stored + 7) & ~7u;
    Py_RETURN_TRUE;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static PyObject *Table_create(TableObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->column_index == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Table.__init__ was not called");
        return NULL;
    }
    if (self->base != NULL)
        Py_RETURN_TRUE;
    self->stride = (uint32_t)((sizeof(row_header) + self->data_size + 7) & ~(size_t)7);
    self->buckets = self->size * 2 < 16 ? 16 : self->size * 2;
    size_t off_index = align64(sizeof(table_header));
    size_t off_free = align64(off_index + (size_t)self->buckets * sizeof(uint64_t));
    size_t off_journal = align64(off_free + (size_t)self->size * sizeof(uint32_t));
    size_t off_rows = align64(off_journal + self->stride);
    size_t total = off_rows + (size_t)self->size * self->stride;
    char *base = shared_alloc(total);
    if (base == NULL)
        return NULL;
    table_header *h = (table_header *)base;
    if (robust_mutex_init(&h->lock, PTHREAD_MUTEX_NORMAL) < 0) {
        munmap(base, total);
        return NULL;
    }
    self->base = base;
    self->mem_size = total;
    self->hdr = h;
    self->index = (uint64_t *)(base + off_index);
    self->free_rows = (uint32_t *)(base + off_free);
    self->journal = base + off_journal;
    self->rows = base + off_rows;
    for (uint32_t i = 0; i < self->size; i++)
        self->free_rows[i] = self->size - 1 - i;
    h->free_top = self->size;
    Py_RETURN_TRUE;
}

/* Column values staged from a dict: encoded like a row's data, with a per-column length (0: absent). */
typedef struct {
    row_buffer buf;
    Py_ssize_t lengths_stack[64];
    Py_ssize_t *lengths;
} staged_values;

static int stage_values(TableObject *t, PyObject *values, staged_values *s)
{
    s->lengths = s->lengths_stack;
    if (row_buffer_init(&s->buf, t->data_size) < 0)
        return -1;
    if (t->ncols > 64 && (s->lengths = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)t->ncols)) == NULL) {
        s->lengths = s->lengths_stack;
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < t->ncols; i++)
        s->lengths[i] = 0;
    PyObject *name, *value;
    Py_ssize_t it = 0;
    while (PyDict_Next(values, &it, &name, &value)) {
        Py_ssize_t ci = column_position(t, name);
        if (ci < 0)
            return -1;
        column_def *c = &t->columns[ci];
        s->lengths[ci] = encode_value(c, value, s->buf.data + c->offset);
        if (s->lengths[ci] < 0)
            return -1;
    }
    return 0;
}

static void staged_free(staged_values *s)
{
    if (s->lengths != s->lengths_stack)
        PyMem_Free(s->lengths);
    row_buffer_free(&s->buf);
}

static int check_dict(PyObject *values, const char *method, const char *what)
{
    if (PyDict_Check(values))
        return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes a dict of %s, not %.100s", method, what, Py_TYPE(values)->tp_name);
    return -1;
}

/* Whether the staged columns equal those of the row `data` (NULL: a new, zeroed row). Strings
 * compare by their bytes (a str by its UTF-8). */
static int staged_match(TableObject *t, const staged_values *s, const char *data)
{
    static const char zeros[8] = {0};
    for (Py_ssize_t i = 0; i < t->ncols; i++) {
        if (s->lengths[i] == 0)
            continue;
        const column_def *c = &t->columns[i];
        const char *want = s->buf.data + c->offset;
        if (c->type != TYPE_STRING) {
            if (memcmp(want, data ? data + c->offset : zeros, 8) != 0)
                return 0;
            continue;
        }
        uint32_t want_len = (uint32_t)s->lengths[i] - STRING_HEADER, have_len = 0;
        if (data != NULL) {
            memcpy(&have_len, data + c->offset, sizeof have_len);
            have_len &= ~STRING_IS_BYTES;
            if (have_len > c->size)
                have_len = c->size;
        }
        if (want_len != have_len ||
            (want_len && memcmp(want + STRING_HEADER, data + c->offset + STRING_HEADER, want_len) != 0))
            return 0;
    }
    return 1;
}

/* Under the lock: write the staged columns into the row of `key`, found at index slot `pos`, or
 * into a new zeroed row whose entry goes to `slot` when pos < 0. -1 (table full) with an exception. */
static int write_staged(TableObject *t, const table_key *key, int64_t pos, uint32_t slot, const staged_values *s)
{
    int64_t ri;
    if (pos >= 0) {
        ri = (uint32_t)t->index[pos] - 2;
        write_begin(t, (uint32_t)ri);
    }
    else if ((ri = row_insert_begin(t, key)) < 0) {
        return -1;
    }
    char *data = ROW_DATA(ROW(t, ri));
    for (Py_ssize_t i = 0; i < t->ncols; i++)
        if (s->lengths[i] > 0)
            memcpy(data + t->columns[i].offset, s->buf.data + t->columns[i].offset, (size_t)s->lengths[i]);
    write_commit(t, (uint32_t)ri);
    if (pos < 0)
        row_insert_publish(t, key, (uint32_t)ri, slot);
    write_end(t);
    return 0;
}

/* Under the lock: remove the row whose entry is at index slot `pos`. */
static void delete_at(TableObject *t, int64_t pos)
{
    table_header *h = t->hdr;
    uint32_t ri = (uint32_t)t->index[pos] - 2;
    write_begin(t, ri);
    ROW(t, ri)->used = 0;
    write_commit(t, ri);
    __atomic_store_n(&t->index[pos], ENTRY_TOMBSTONE, __ATOMIC_RELEASE);
    h->tombstones++;
    h->count--;
    t->free_rows[h->free_top++] = ri;
    write_end(t);
}

static PyObject *Table_set(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set() takes a key and a dict of column values");
        return NULL;
    }
    table_key key;
    if (table_ready(self) < 0 || parse_key(args[0], &key) < 0 || check_dict(args[1], "set", "column values") < 0)
        return NULL;
    staged_values staged;
    PyObject *result = NULL;
    if (stage_values(self, args[1], &staged) < 0 || table_lock(self) < 0)
        goto done;
    uint32_t slot = 0;
    int64_t pos = locate(self, &key, &slot);
    int rc = write_staged(self, &key, pos, slot, &staged);
    table_unlock(self);
    if (rc == 0)
        result = Py_NewRef(Py_True);
done:
    staged_free(&staged);
    return result;
}

/* replace(key, expected, values): compare-and-set of one row. */
static PyObject *Table_replace(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "replace() takes a key, the expected columns (or None) and the new ones (or None)");
        return NULL;
    }
    table_key key;
    PyObject *expected = args[1], *values = args[2];
    if (table_ready(self) < 0 || parse_key(args[0], &key) < 0 ||
        (expected != Py_None && check_dict(expected, "replace", "expected column values or None") < 0) ||
        (values != Py_None && check_dict(values, "replace", "new column values or None") < 0))
        return NULL;
    staged_values want, staged;
    int have_want = 0, have_staged = 0;
    PyObject *result = NULL;
    if (expected != Py_None) {
        have_want = 1;
        if (stage_values(self, expected, &want) < 0)
            goto done;
    }
    if (values != Py_None) {
        have_staged = 1;
        if (stage_values(self, values, &staged) < 0)
            goto done;
    }
    if (table_lock(self) < 0)
        goto done;
    uint32_t slot = 0;
    int64_t pos = locate(self, &key, &slot);
    int match = pos < 0 ? !have_want
                        : have_want && staged_match(self, &want, ROW_DATA(ROW(self, (uint32_t)self->index[pos] - 2)));
    int rc = 0;
    if (match && have_staged)
        rc = write_staged(self, &key, pos, slot, &staged);
    else if (match && pos >= 0)
        delete_at(self, pos);
    table_unlock(self);
    if (rc == 0)
        result = Py_NewRef(match ? Py_True : Py_False);
done:
    if (have_want)
        staged_free(&want);
    if (have_staged)
        staged_free(&staged);
    return result;
}

/* get(key, (column, ...)): the values of those columns, as a tuple in that order. */
static PyObject *table_get_columns(TableObject *self, const table_key *key, PyObject *names)
{
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    Py_ssize_t positions_stack[16];
    Py_ssize_t *positions = positions_stack;
    if (n > 16 && (positions = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)n)) == NULL)
        return PyErr_NoMemory();
    PyObject *result = NULL;
    row_buffer buf;
    int have_buf = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if ((positions[i] = column_position(self, PyTuple_GET_ITEM(names, i))) < 0)
            goto done;
    if (row_buffer_init(&buf, self->data_size) < 0)
        goto done;
    have_buf = 1;
    int rc = read_by_key(self, key, 0, self->data_size, buf.data);
    if (rc == READ_MISSING) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (rc != READ_FOUND || (result = PyTuple_New(n)) == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = column_value(&self->columns[positions[i]], buf.data);
        if (v == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyTuple_SET_ITEM(result, i, v);
    }
done:
    if (have_buf)
        row_buffer_free(&buf);
    if (positions != positions_stack)
        PyMem_Free(positions);
    return result;
}

static PyObject *Table_get(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get() takes a key and an optional column name");
        return NULL;
    }
    table_key key;
    if (table_ready(self) < 0 || parse_key(args[0], &key) < 0)
        return NULL;
    if (nargs == 2 && PyTuple_Check(args[1]))
        return table_get_columns(self, &key, args[1]);
    if (nargs == 2 && args[1] != Py_None) {
        Py_ssize_t ci = column_position(self, args[1]);
        if (ci < 0)
            return NULL;
        column_def *c = &self->columns[ci];
        uint32_t width = c->type == TYPE_STRING ? STRING_HEADER + c->size : c->size;
        row_buffer buf;
        if (row_buffer_init(&buf, self->data_size) < 0)
            return NULL;
        int rc = read_by_key(self, &key, c->offset, width, buf.data + c->offset);
        PyObject *result = rc == READ_FOUND ? column_value(c, buf.data) : NULL;
        row_buffer_free(&buf);
        if (rc == READ_MISSING)
            Py_RETURN_NONE;
        return result;
    }
    row_buffer buf;
    if (row_buffer_init(&buf, self->data_size) < 0)
        return NULL;
    int rc = read_by_key(self, &key, 0, self->data_size, buf.data);
    PyObject *result = rc == READ_FOUND ? row_dict(self, buf.data) : NULL;
    row_buffer_free(&buf);
    if (rc == READ_MISSING)
        Py_RETURN_NONE;
    return result;
}

static int Table_contains(TableObject *self, PyObject *k)
{
    table_key key;
    if (table_ready(self) < 0 || parse_key(k, &key) < 0)
        return -1;
    int rc = read_by_key(self, &key, 0, 0, NULL);
    return rc < 0 ? -1 : rc;
}

static PyObject *Table_exists(TableObject *self, PyObject *k)
{
    int rc = Table_contains(self, k);
    return rc < 0 ? NULL : PyBool_FromLong(rc);
}

static PyObject *Table_delete(TableObject *self, PyObject *k)
{
    table_key key;
    if (table_ready(self) < 0 || parse_key(k, &key) < 0 || table_lock(self) < 0)
        return NULL;
    uint32_t slot;
    int64_t pos = locate(self, &key, &slot);
    if (pos >= 0)
        delete_at(self, pos);
    table_unlock(self);
    return PyBool_FromLong(pos >= 0);
}

/* incr/decr: add `by` (negated for decr) to a number column; a missing row is created zeroed. */
static PyObject *table_add(TableObject *self, PyObject *const *args, Py_ssize_t nargs, int negate)
{
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "incr()/decr() take a key, a column name and an optional amount");
        return NULL;
    }
    table_key key;
    if (table_ready(self) < 0 || parse_key(args[0], &key) < 0)
        return NULL;
    Py_ssize_t ci = column_position(self, args[1]);
    if (ci < 0)
        return NULL;
    column_def *c = &self->columns[ci];
    PyObject *by = nargs == 3 ? args[2] : NULL;
    int64_t by_int = 1;
    double by_float = 1.0;
    if (c->type == TYPE_INT) {
        if (by != NULL) {
            if (!PyLong_Check(by)) {
                PyErr_Format(PyExc_TypeError, "column %R is an int column; the amount must be int, not %.100s",
                             c->name, Py_TYPE(by)->tp_name);
                return NULL;
            }
            by_int = PyLong_AsLongLong(by);
            if (by_int == -1 && PyErr_Occurred())
                return NULL;
        }
        if (negate)
            by_int = (int64_t)(0 - (uint64_t)by_int);
    }
    else if (c->type == TYPE_FLOAT) {
        if (by != NULL) {
            if (!PyFloat_Check(by) && !PyLong_Check(by)) {
                PyErr_Format(PyExc_TypeError, "the amount must be a number, not %.100s", Py_TYPE(by)->tp_name);
                return NULL;
            }
            by_float = PyFloat_AsDouble(by);
            if (by_float == -1.0 && PyErr_Occurred())
                return NULL;
        }
        if (negate)
            by_float = -by_float;
    }
    else {
        PyErr_Format(PyExc_TypeError, "column %R is a string column; incr/decr need a number column", c->name);
        return NULL;
    }
    if (table_lock(self) < 0)
        return NULL;
    uint32_t slot = 0;
    int64_t pos = locate(self, &key, &slot);
    int64_t ri;
    if (pos >= 0) {
        ri = (uint32_t)self->index[pos] - 2;
        write_begin(self, (uint32_t)ri);
    }
    else if ((ri = row_insert_begin(self, &key)) < 0) {
        table_unlock(self);
        return NULL;
    }
    char *field = ROW_DATA(ROW(self, ri)) + c->offset;
    int64_t new_int = 0;
    double new_float = 0;
    if (c->type == TYPE_INT) {
        memcpy(&new_int, field, sizeof new_int);
        new_int = (int64_t)((uint64_t)new_int + (uint64_t)by_int);
        memcpy(field, &new_int, sizeof new_int);
    }
    else {
        memcpy(&new_float, field, sizeof new_float);
        new_float += by_float;
        memcpy(field, &new_float, sizeof new_float);
    }
    write_commit(self, (uint32_t)ri);
    if (pos < 0)
        row_insert_publish(self, &key, (uint32_t)ri, slot);
    write_end(self);
    table_unlock(self);
    return c->type == TYPE_INT ? PyLong_FromLongLong(new_int) : PyFloat_FromDouble(new_float);
}

static PyObject *Table_incr(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return table_add(self, args, nargs, 0);
}

static PyObject *Table_decr(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return table_add(self, args, nargs, 1);
}

/* incr_if(key, column, amount, where): a checked integer add on a row whose columns match `where`. */
static PyObject *Table_incr_if(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "incr_if() takes a key, a column name, an amount and a dict of column values");
        return NULL;
    }
    table_key key;
    if (table_ready(self) < 0 || parse_key(args[0], &key) < 0 ||
        check_dict(args[3], "incr_if", "column values the row must have") < 0)
        return NULL;
    Py_ssize_t ci = column_position(self, args[1]);
    if (ci < 0)
        return NULL;
    column_def *c = &self->columns[ci];
    if (c->type != TYPE_INT) {
        PyErr_Format(PyExc_TypeError, "incr_if() needs an int column; %R is not one", c->name);
        return NULL;
    }
    if (!PyLong_Check(args[2])) {
        PyErr_Format(PyExc_TypeError, "the amount must be int, not %.100s", Py_TYPE(args[2])->tp_name);
        return NULL;
    }
    int64_t amount = PyLong_AsLongLong(args[2]);
    if (amount == -1 && PyErr_Occurred())
        return NULL;
    staged_values where;
    PyObject *result = NULL;
    if (stage_values(self, args[3], &where) < 0 || table_lock(self) < 0)
        goto done;
    uint32_t slot = 0;
    int64_t pos = locate(self, &key, &slot);
    int64_t ri = pos >= 0 ? (int64_t)((uint32_t)self->index[pos] - 2) : -1;
    if (!staged_match(self, &where, ri >= 0 ? ROW_DATA(ROW(self, ri)) : NULL)) {
        table_unlock(self);
        result = Py_NewRef(Py_None);
        goto done;
    }
    int64_t value = 0;
    if (ri >= 0)
        memcpy(&value, ROW_DATA(ROW(self, ri)) + c->offset, sizeof value);
    if (__builtin_add_overflow(value, amount, &value)) {
        table_unlock(self);
        PyErr_Format(PyExc_OverflowError, "incr_if(): column %R would overflow a signed 64-bit int", c->name);
        goto done;
    }
    if (ri >= 0)
        write_begin(self, (uint32_t)ri);
    else if ((ri = row_insert_begin(self, &key)) < 0) {
        table_unlock(self);
        goto done;
    }
    memcpy(ROW_DATA(ROW(self, ri)) + c->offset, &value, sizeof value);
    write_commit(self, (uint32_t)ri);
    if (pos < 0)
        row_insert_publish(self, &key, (uint32_t)ri, slot);
    write_end(self);
    table_unlock(self);
    result = PyLong_FromLongLong(value);
done:
    staged_free(&where);
    return result;
}

static Py_ssize_t Table_len(TableObject *self)
{
    if (table_ready(self) < 0)
        return -1;
    return __atomic_load_n(&self->hdr->count, __ATOMIC_ACQUIRE);
}

static PyObject *Table_count(TableObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t n = Table_len(self);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *Table_stats(TableObject *self, PyObject *Py_UNUSED(ignored))
{
    if (table_ready(self) < 0)
        return NULL;
    table_header *h = self->hdr;
    return Py_BuildValue("{s:I,s:I,s:I,s:I,s:I,s:n,s:K,s:K}", "size", self->size, "count",
                         __atomic_load_n(&h->count, __ATOMIC_ACQUIRE), "buckets", self->buckets, "tombstones",
                         __atomic_load_n(&h->tombstones, __ATOMIC_ACQUIRE), "row_size", self->stride,
                         "memory_size", (Py_ssize_t)self->mem_size,
                         "rebuilds", (unsigned long long)__atomic_load_n(&h->rebuilds, __ATOMIC_ACQUIRE),
                         "recoveries", (unsigned long long)__atomic_load_n(&h->recoveries, __ATOMIC_ACQUIRE));
}

static PyObject *Table_get_memory_size(TableObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(self->mem_size);
}

static PyObject *Table_get_size(TableObject *self, void *Py_UNUSED(closure)) { return PyLong_FromUnsignedLong(self->size); }

static PyObject *Table_get_columns(TableObject *self, void *Py_UNUSED(closure))
{
    PyObject *d = PyDict_New();
    for (Py_ssize_t i = 0; d != NULL && i < self->ncols; i++) {
        column_def *c = &self->columns[i];
        PyObject *spec = Py_BuildValue("(iIO)", c->type, c->size, c->truncate ? Py_True : Py_False);
        if (spec == NULL || PyDict_SetItem(d, c->name, spec) < 0)
            Py_CLEAR(d);
        Py_XDECREF(spec);
    }
    return d;
}

/* --- iteration --------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    TableObject *table;
    uint32_t next_row;
} TableIterObject;

static PyTypeObject TableIterType;

static PyObject *Table_iter(TableObject *self)
{
    if (table_ready(self) < 0)
        return NULL;
    TableIterObject *it = PyObject_New(TableIterObject, &TableIterType);
    if (it == NULL)
        return NULL;
    Py_INCREF(self);
    it->table = self;
    it->next_row = 0;
    return (PyObject *)it;
}

static void TableIter_dealloc(TableIterObject *it)
{
    Py_DECREF(it->table);
    PyObject_Free(it);
}

static PyObject *TableIter_next(TableIterObject *it)
{
    TableObject *t = it->table;
    row_buffer buf;
    row_header key;
    if (row_buffer_init(&buf, t->data_size) < 0)
        return NULL;
    PyObject *result = NULL;
    while (it->next_row < t->size) {
        int rc = snapshot_row(t, it->next_row++, &key, buf.data);
        if (rc < 0)
            break;
        if (rc == READ_FOUND) {
            PyObject *k = row_key(&key);
            PyObject *row = k ? row_dict(t, buf.data) : NULL;
            result = row ? PyTuple_Pack(2, k, row) : NULL;
            Py_XDECREF(k);
            Py_XDECREF(row);
            break;
        }
    }
    row_buffer_free(&buf);
    return result;
}

static PyTypeObject TableIterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pyswoole.shm._shm.TableIterator",
    .tp_basicsize = sizeof(TableIterObject),
    .tp_dealloc = (destructor)TableIter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)TableIter_next,
};

static PyMethodDef Table_methods[] = {
    {"column", (PyCFunction)(void (*)(void))Table_column, METH_VARARGS | METH_KEYWORDS,
     "column(name, type, size=0, *, truncate=False): declare a column (before create())."},
    {"create", (PyCFunction)Table_create, METH_NOARGS, "Allocate the shared memory; call before forking."},
    {"set", (PyCFunction)(void (*)(void))Table_set, METH_FASTCALL,
     "set(key, values): write the given columns of a row (creating it zeroed if missing)."},
    {"get", (PyCFunction)(void (*)(void))Table_get, METH_FASTCALL,
     "get(key, column=None): the row as a dict, one column's value, or a tuple of columns' values "
     "(column a tuple of names); None when missing."},
    {"exists", (PyCFunction)Table_exists, METH_O, "exists(key): whether the row exists."},
    {"delete", (PyCFunction)Table_delete, METH_O, "delete(key): remove the row; False when it was missing."},
    {"incr", (PyCFunction)(void (*)(void))Table_incr, METH_FASTCALL,
     "incr(key, column, incrby=1): atomically add to a number column; returns the new value."},
    {"decr", (PyCFunction)(void (*)(void))Table_decr, METH_FASTCALL,
     "decr(key, column, decrby=1): atomically subtract from a number column; returns the new value."},
    {"replace", (PyCFunction)(void (*)(void))Table_replace, METH_FASTCALL,
     "replace(key, expected, values): compare-and-set of one row; whether it was done."},
    {"incr_if", (PyCFunction)(void (*)(void))Table_incr_if, METH_FASTCALL,
     "incr_if(key, column, amount, where): add to an int column if the row matches; new value or None."},
    {"count", (PyCFunction)Table_count, METH_NOARGS, "count(): the number of rows."},
    {"stats", (PyCFunction)Table_stats, METH_NOARGS, "stats(): capacity, usage and recovery counters."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Table_getset[] = {
    {"memory_size", (getter)Table_get_memory_size, NULL, "Bytes of shared memory (0 before create()).", NULL},
    {"size", (getter)Table_get_size, NULL, "The number of rows the table holds.", NULL},
    {"columns", (getter)Table_get_columns, NULL, "Declared columns: name -> (type, size, truncate).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods Table_as_sequence = {
    .sq_length = (lenfunc)Table_len,
    .sq_contains = (objobjproc)Table_contains,
};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pyswoole.shm._shm.Table",
    .tp_doc = "Table(size): a fixed-size hash table of typed rows in shared memory.",
    .tp_basicsize = sizeof(TableObject),
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Table_init,
    .tp_methods = Table_methods,
    .tp_getset = Table_getset,
    .tp_as_sequence = &Table_as_sequence,
    .tp_iter = (getiterfunc)Table_iter,
};

/* ------------------------------------------------------------------------------------------------
 * Atomic (unsigned 32-bit) and AtomicLong (signed 64-bit)
 * --------------------------------------------------------------------------------------------- */

#define SHARED_PAGE 4096

/* The shared page of an Atomic/AtomicLong. `value` comes first (the 32-bit value, or the 64-bit
 * one). wakeup() bumps `posts` (the futex word waiters sleep on) and leaves `tickets`: how many of
 * the processes that were waiting before that post may still return True besides the one that
 * consumes the value. */
typedef struct {
    uint64_t value;
    uint32_t posts;
    uint32_t tickets;
} atomic_shared;

typedef struct {
    PyObject_HEAD
    atomic_shared *shm;
} AtomicObject;

static void Atomic_dealloc(AtomicObject *self)
{
    if (self->shm != NULL)
        munmap(self->shm, SHARED_PAGE);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int atomic_map(AtomicObject *self)
{
    if (self->shm != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "__init__ called twice");
        return -1;
    }
    self->shm = shared_alloc(SHARED_PAGE);
    return self->shm == NULL ? -1 : 0;
}

/* A waiter that slept before the latest post takes one of its tickets. */
static int take_ticket(atomic_shared *shm)
{
    uint32_t left = __atomic_load_n(&shm->tickets, __ATOMIC_SEQ_CST);
    while (left > 0)
        if (__atomic_compare_exchange_n(&shm->tickets, &left, left - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return 1;
    return 0;
}

/* Swoole's wait(): consume a posted event (value 1 -> 0), sleeping while the value is 0. A waiter
 * woken by wakeup(n) whose event another waiter consumed returns True with one of the post's
 * tickets, so up to n waiters return. */
static PyObject *atomic_wait(AtomicObject *self, PyObject *args, PyObject *kwds, int (*take)(AtomicObject *))
{
    static char *kwlist[] = {"timeout", NULL};
    double timeout = 1.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|d:wait", kwlist, &timeout))
        return NULL;
    double deadline = timeout < 0 ? -1 : monotonic_now() + timeout;
    atomic_shared *shm = self->shm;
    uint32_t seen = __atomic_load_n(&shm->posts, __ATOMIC_SEQ_CST);
    for (;;) {
        int rc = take(self);
        if (rc != 0) /* 1: taken; -1: the value is neither 0 nor 1 */
            return PyBool_FromLong(rc > 0);
        uint32_t posts = __atomic_load_n(&shm->posts, __ATOMIC_SEQ_CST);
        if (posts != seen) {
            if (take_ticket(shm))
                Py_RETURN_TRUE;
            seen = posts; /* that post's waiters are all served: wait for the next one */
            continue;
        }
        struct timespec ts, *tsp = NULL;
        if (deadline >= 0) {
            double left = deadline - monotonic_now();
            if (left <= 0)
                Py_RETURN_FALSE;
            ts = timespec_from(left);
            tsp = &ts;
        }
        long res;
        Py_BEGIN_ALLOW_THREADS
        res = syscall(SYS_futex, &shm->posts, FUTEX_WAIT, seen, tsp, NULL, 0);
        Py_END_ALLOW_THREADS
        if (res < 0 && errno == EINTR && PyErr_CheckSignals() < 0)
            return NULL;
    }
}

/* Swoole's wakeup(): post an event (value 0 -> 1) and wake up to n waiters, of which up to n
 * return True (one consumes the event, the others take the post's tickets). */
static PyObject *atomic_wake(AtomicObject *self, PyObject *args, PyObject *kwds, int (*post)(AtomicObject *))
{
    static char *kwlist[] = {"n", NULL};
    int n = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|i:wakeup", kwlist, &n))
        return NULL;
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "wakeup() needs n >= 1");
        return NULL;
    }
    atomic_shared *shm = self->shm;
    if (post(self)) {
        __atomic_store_n(&shm->tickets, (uint32_t)(n - 1), __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&shm->posts, 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, &shm->posts, FUTEX_WAKE, n, NULL, NULL, 0);
    }
    Py_RETURN_TRUE;
}

/* --- Atomic (uint32) --- */

static int u32_arg(PyObject *obj, uint32_t *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "Atomic values are int, not %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    unsigned long v = PyLong_AsUnsignedLong(obj);
    if (v == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    if (v > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "Atomic holds unsigned 32-bit values (0 .. 4294967295)");
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

#define U32(self) ((uint32_t *)&(self)->shm->value)

static int Atomic_init(AtomicObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"initial", NULL};
    PyObject *initial = NULL;
    uint32_t v = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:Atomic", kwlist, &initial))
        return -1;
    if ((initial != NULL && u32_arg(initial, &v) < 0) || atomic_map(self) < 0)
        return -1;
    __atomic_store_n(U32(self), v, __ATOMIC_RELEASE);
    return 0;
}

static PyObject *Atomic_add(AtomicObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t v = 1;
    if (nargs > 1 || (nargs == 1 && u32_arg(args[0], &v) < 0))
        return nargs > 1 ? PyErr_Format(PyExc_TypeError, "add() takes at most one argument") : NULL;
    return PyLong_FromUnsignedLong(__atomic_add_fetch(U32(self), v, __ATOMIC_SEQ_CST));
}

static PyObject *Atomic_sub(AtomicObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t v = 1;
    if (nargs > 1 || (nargs == 1 && u32_arg(args[0], &v) < 0))
        return nargs > 1 ? PyErr_Format(PyExc_TypeError, "sub() takes at most one argument") : NULL;
    return PyLong_FromUnsignedLong(__atomic_sub_fetch(U32(self), v, __ATOMIC_SEQ_CST));
}

static PyObject *Atomic_get(AtomicObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLong(__atomic_load_n(U32(self), __ATOMIC_SEQ_CST));
}

static PyObject *Atomic_set(AtomicObject *self, PyObject *value)
{
    uint32_t v;
    if (u32_arg(value, &v) < 0)
        return NULL;
    __atomic_store_n(U32(self), v, __ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

static PyObject *Atomic_cmpset(AtomicObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t cmp, value;
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "cmpset() takes cmp and new value");
    if (u32_arg(args[0], &cmp) < 0 || u32_arg(args[1], &value) < 0)
        return NULL;
    return PyBool_FromLong(
        __atomic_compare_exchange_n(U32(self), &cmp, value, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
}

static int atomic32_take(AtomicObject *self)
{
    uint32_t expected = 1;
    if (__atomic_compare_exchange_n(U32(self), &expected, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return 1;
    return expected == 0 ? 0 : -1;
}

static PyObject *Atomic_wait(AtomicObject *self, PyObject *args, PyObject *kwds)
{
    return atomic_wait(self, args, kwds, atomic32_take);
}

static int atomic32_post(AtomicObject *self)
{
    uint32_t expected = 0;
    return __atomic_compare_exchange_n(U32(self), &expected, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static PyObject *Atomic_wakeup(AtomicObject *self, PyObject *args, PyObject *kwds)
{
    return atomic_wake(self, args, kwds, atomic32_post);
}

static PyMethodDef Atomic_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Atomic_add, METH_FASTCALL, "add(value=1): add; returns the new value."},
    {"sub", (PyCFunction)(void (*)(void))Atomic_sub, METH_FASTCALL,
     "sub(value=1): subtract; returns the new value."},
    {"get", (PyCFunction)Atomic_get, METH_NOARGS, "get(): the current value."},
    {"set", (PyCFunction)Atomic_set, METH_O, "set(value): store a value."},
    {"cmpset", (PyCFunction)(void (*)(void))Atomic_cmpset, METH_FASTCALL,
     "cmpset(cmp, value): store value if the current value is cmp; returns whether it did."},
    {"wait", (PyCFunction)(void (*)(void))Atomic_wait, METH_VARARGS | METH_KEYWORDS,
     "wait(timeout=1.0): wait for wakeup() while the value is 0 (timeout < 0: forever); "
     "True when an event was consumed (value 1 -> 0)."},
    {"wakeup", (PyCFunction)(void (*)(void))Atomic_wakeup, METH_VARARGS | METH_KEYWORDS,
     "wakeup(n=1): post an event (value 0 -> 1) and wake up to n waiters."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AtomicType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pyswoole.shm._shm.Atomic",
    .tp_doc = "Atomic(initial=0): an unsigned 32-bit integer in shared memory.",
    .tp_basicsize = sizeof(AtomicObject),
    .tp_dealloc = (destructor)Atomic_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Atomic_init,
    .tp_methods = Atomic_methods,
};

/* --- AtomicLong (int64) --- */

static int i64_arg(PyObject *obj, int64_t *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "AtomicLong values are int, not %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    long long v = PyLong_AsLongLong(obj);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

#define I64(self) ((int64_t *)&(self)->shm->value)

static int AtomicLong_init(AtomicObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"initial", NULL};
    PyObject *initial = NULL;
    int64_t v = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:AtomicLong", kwlist, &initial))
        return -1;
    if ((initial != NULL && i64_arg(initial, &v) < 0) || atomic_map(self) < 0)
        return -1;
    __atomic_store_n(I64(self), v, __ATOMIC_RELEASE);
    return 0;
}

/* Wrapping 64-bit add (no signed-overflow UB). */
static int64_t i64_add_fetch(int64_t *p, int64_t v)
{
    return (int64_t)(__atomic_add_fetch((uint64_t *)p, (uint64_t)v, __ATOMIC_SEQ_CST));
}

static PyObject *AtomicLong_add(AtomicObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t v = 1;
    if (nargs > 1 || (nargs == 1 && i64_arg(args[0], &v) < 0))
        return nargs > 1 ? PyErr_Format(PyExc_TypeError, "add() takes at most one argument") : NULL;
    return PyLong_FromLongLong(i64_add_fetch(I64(self), v));
}

static PyObject *AtomicLong_sub(AtomicObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t v = 1;
    if (nargs > 1 || (nargs == 1 && i64_arg(args[0], &v) < 0))
        return nargs > 1 ? PyErr_Format(PyExc_TypeError, "sub() takes at most one argument") : NULL;
    return PyLong_FromLongLong(i64_add_fetch(I64(self), (int64_t)(0 - (uint64_t)v)));
}

static PyObject *AtomicLong_get(AtomicObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(__atomic_load_n(I64(self), __ATOMIC_SEQ_CST));
}

static PyObject *AtomicLong_set(AtomicObject *self, PyObject *value)
{
    int64_t v;
    if (i64_arg(value, &v) < 0)
        return NULL;
    __atomic_store_n(I64(self), v, __ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

static PyObject *AtomicLong_cmpset(AtomicObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t cmp, value;
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "cmpset() takes cmp and new value");
    if (i64_arg(args[0], &cmp) < 0 || i64_arg(args[1], &value) < 0)
        return NULL;
    return PyBool_FromLong(
        __atomic_compare_exchange_n(I64(self), &cmp, value, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
}

static int atomic64_take(AtomicObject *self)
{
    int64_t expected = 1;
    if (__atomic_compare_exchange_n(I64(self), &expected, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return 1;
    return expected == 0 ? 0 : -1;
}

static PyObject *AtomicLong_wait(AtomicObject *self, PyObject *args, PyObject *kwds)
{
    return atomic_wait(self, args, kwds, atomic64_take);
}

static int atomic64_post(AtomicObject *self)
{
    int64_t expected = 0;
    return __atomic_compare_exchange_n(I64(self), &expected, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static PyObject *AtomicLong_wakeup(AtomicObject *self, PyObject *args, PyObject *kwds)
{
    return atomic_wake(self, args, kwds, atomic64_post);
}

static PyMethodDef AtomicLong_methods[] = {
    {"add", (PyCFunction)(void (*)(void))AtomicLong_add, METH_FASTCALL,
     "add(value=1): add; returns the new value."},
    {"sub", (PyCFunction)(void (*)(void))AtomicLong_sub, METH_FASTCALL,
     "sub(value=1): subtract; returns the new value."},
    {"get", (PyCFunction)AtomicLong_get, METH_NOARGS, "get(): the current value."},
    {"set", (PyCFunction)AtomicLong_set, METH_O, "set(value): store a value."},
    {"cmpset", (PyCFunction)(void (*)(void))AtomicLong_cmpset, METH_FASTCALL,
     "cmpset(cmp, value): store value if the current value is cmp; returns whether it did."},
    {"wait", (PyCFunction)(void (*)(void))AtomicLong_wait, METH_VARARGS | METH_KEYWORDS,
     "wait(timeout=1.0): wait for wakeup() while the value is 0 (timeout < 0: forever); "
     "True when an event was consumed (value 1 -> 0)."},
    {"wakeup", (PyCFunction)(void (*)(void))AtomicLong_wakeup, METH_VARARGS | METH_KEYWORDS,
     "wakeup(n=1): post an event (value 0 -> 1) and wake up to n waiters."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AtomicLongType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pyswoole.shm._shm.AtomicLong",
    .tp_doc = "AtomicLong(initial=0): a signed 64-bit integer in shared memory.",
    .tp_basicsize = sizeof(AtomicObject),
    .tp_dealloc = (destructor)Atomic_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)AtomicLong_init,
    .tp_methods = AtomicLong_methods,
};

/* ------------------------------------------------------------------------------------------------
 * Lock: MUTEX or RWLOCK, robust across process death
 *
 * MUTEX is one robust error-checking mutex. RWLOCK is built from robust mutexes too (pthread
 * rwlocks are not robust): a gate mutex plus RW_SLOTS reader-slot mutexes. A reader passes the gate
 * and holds one slot; a writer holds the gate and every slot. A dead holder's mutexes come back
 * with EOWNERDEAD and are taken over, so nobody waits forever for a dead process.
 * --------------------------------------------------------------------------------------------- */

enum { LOCK_RWLOCK = 1, LOCK_MUTEX = 3 };
#define RW_SLOTS 32

typedef struct {
    pthread_mutex_t gate;
    pthread_mutex_t slots[RW_SLOTS];
    uint64_t recoveries;
} lock_shared;

typedef struct {
    PyObject_HEAD
    int type;
    lock_shared *shm;
    int write_held;  /* this process holds the RWLOCK for writing */
    int read_held;   /* number of reader slots this process holds */
    uint8_t read_slots[RW_SLOTS];
} LockObject;

/* Map a pthread result to 1 (acquired), 0 (busy / timed out) or -1 (exception set). */
static int lock_result(LockObject *self, int rc)
{
    if (rc == EOWNERDEAD) {
        __atomic_add_fetch(&self->shm->recoveries, 1, __ATOMIC_RELAXED);
        return 1;
    }
    if (rc == 0)
        return 1;
    if (rc == EBUSY || rc == ETIMEDOUT)
        return 0;
    if (rc == EDEADLK) {
        PyErr_SetString(PyExc_RuntimeError, "this thread already holds the lock");
        return -1;
    }
    errno = rc;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* Acquire mutex m: 0 = try once, <0 deadline = block forever, else until the CLOCK_MONOTONIC deadline. */
static int mutex_acquire(LockObject *self, pthread_mutex_t *m, int block, const struct timespec *deadline)
{
    int rc = pthread_mutex_trylock(m);
    if (rc == EBUSY && block) {
        Py_BEGIN_ALLOW_THREADS
        rc = deadline ? pthread_mutex_clocklock(m, CLOCK_MONOTONIC, deadline) : pthread_mutex_lock(m);
        Py_END_ALLOW_THREADS
    }
    if (rc == EOWNERDEAD)
        pthread_mutex_consistent(m);
    if (rc == EDEADLK && !block) /* held by this very thread: busy, for a try */
        return 0;
    return lock_result(self, rc);
}

static int write_acquire(LockObject *self, int block, const struct timespec *deadline)
{
    int rc = mutex_acquire(self, &self->shm->gate, block, deadline);
    if (rc <= 0 || self->type == LOCK_MUTEX)
        return rc;
    for (int i = 0; i < RW_SLOTS; i++) {
        rc = mutex_acquire(self, &self->shm->slots[i], block, deadline);
        if (rc <= 0) {
            while (i-- > 0)
                pthread_mutex_unlock(&self->shm->slots[i]);
            pthread_mutex_unlock(&self->shm->gate);
            return rc;
        }
    }
    self->write_held = 1;
    return 1;
}

static int read_acquire(LockObject *self, int block)
{
    if (self->type == LOCK_MUTEX)
        return write_acquire(self, block, NULL);
    if (self->read_held == RW_SLOTS) {
        PyErr_SetString(PyExc_RuntimeError, "too many nested read locks");
        return -1;
    }
    int rc = mutex_acquire(self, &self->shm->gate, block, NULL);
    if (rc <= 0)
        return rc;
    int first = (int)(getpid() % RW_SLOTS);
    int slot = -1;
    for (int i = 0; i < RW_SLOTS && slot < 0 && rc >= 0; i++) {
        rc = mutex_acquire(self, &self->shm->slots[(first + i) % RW_SLOTS], 0, NULL);
        if (rc == 1)
            slot = (first + i) % RW_SLOTS;
    }
    if (slot < 0 && rc >= 0 && block) {
        rc = mutex_acquire(self, &self->shm->slots[first], 1, NULL);
        if (rc == 1)
            slot = first;
    }
    pthread_mutex_unlock(&self->shm->gate);
    if (slot < 0)
        return rc;
    self->read_slots[self->read_held++] = (uint8_t)slot;
    return 1;
}

static int Lock_init(LockObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"type", NULL};
    int type = LOCK_MUTEX;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|i:Lock", kwlist, &type))
        return -1;
    if (type != LOCK_MUTEX && type != LOCK_RWLOCK) {
        PyErr_Format(PyExc_ValueError, "unknown lock type %d (use Lock.MUTEX or Lock.RWLOCK)", type);
        return -1;
    }
    if (self->shm != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Lock.__init__ called twice");
        return -1;
    }
    lock_shared *shm = shared_alloc(sizeof(lock_shared));
    if (shm == NULL)
        return -1;
    int rc = robust_mutex_init(&shm->gate, PTHREAD_MUTEX_ERRORCHECK);
    for (int i = 0; rc == 0 && type == LOCK_RWLOCK && i < RW_SLOTS; i++)
        rc = robust_mutex_init(&shm->slots[i], PTHREAD_MUTEX_ERRORCHECK);
    if (rc < 0) {
        munmap(shm, sizeof(lock_shared));
        return -1;
    }
    self->shm = shm;
    self->type = type;
    return 0;
}

static void Lock_dealloc(LockObject *self)
{
    if (self->shm != NULL)
        munmap(self->shm, sizeof(lock_shared));
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *bool_or_error(int rc) { return rc < 0 ? NULL : PyBool_FromLong(rc); }

static PyObject *Lock_lock(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    return bool_or_error(write_acquire(self, 1, NULL));
}

static PyObject *Lock_trylock(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    return bool_or_error(write_acquire(self, 0, NULL));
}

static PyObject *Lock_lockwait(LockObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", NULL};
    double timeout = 1.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|d:lockwait", kwlist, &timeout))
        return NULL;
    struct timespec deadline = timespec_from(monotonic_now() + (timeout < 0 ? 0 : timeout));
    return bool_or_error(write_acquire(self, 1, &deadline));
}

static PyObject *Lock_lock_read(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    return bool_or_error(read_acquire(self, 1));
}

static PyObject *Lock_trylock_read(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    return bool_or_error(read_acquire(self, 0));
}

static PyObject *Lock_unlock(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    int rc;
    if (self->type == LOCK_MUTEX) {
        rc = pthread_mutex_unlock(&self->shm->gate);
    }
    else if (self->write_held) {
        rc = pthread_mutex_unlock(&self->shm->gate); /* EPERM unless this thread is the writer */
        for (int i = RW_SLOTS; rc == 0 && i-- > 0;)
            pthread_mutex_unlock(&self->shm->slots[i]);
        if (rc == 0)
            self->write_held = 0;
    }
    else {
        /* The newest reader slot this thread owns (other threads may hold slots too). */
        rc = EPERM;
        for (int i = self->read_held; rc == EPERM && i-- > 0;) {
            rc = pthread_mutex_unlock(&self->shm->slots[self->read_slots[i]]);
            if (rc == 0) {
                memmove(&self->read_slots[i], &self->read_slots[i + 1], (size_t)(self->read_held - i - 1));
                self->read_held--;
            }
        }
    }
    if (rc == EPERM) {
        PyErr_SetString(PyExc_RuntimeError, "unlock() of a lock this thread does not hold");
        return NULL;
    }
    if (rc != 0) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_TRUE;
}

static PyObject *Lock_exit(LockObject *self, PyObject *Py_UNUSED(args))
{
    PyObject *r = Lock_unlock(self, NULL);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *Lock_get_recoveries(LockObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(__atomic_load_n(&self->shm->recoveries, __ATOMIC_RELAXED));
}

static PyObject *Lock_get_type(LockObject *self, void *Py_UNUSED(closure)) { return PyLong_FromLong(self->type); }

static PyMethodDef Lock_methods[] = {
    {"lock", (PyCFunction)Lock_lock, METH_NOARGS, "lock(): take the lock exclusively (blocks)."},
    {"trylock", (PyCFunction)Lock_trylock, METH_NOARGS, "trylock(): take the lock exclusively if free."},
    {"lockwait", (PyCFunction)(void (*)(void))Lock_lockwait, METH_VARARGS | METH_KEYWORDS,
     "lockwait(timeout=1.0): take the lock exclusively, waiting at most timeout seconds."},
    {"lock_read", (PyCFunction)Lock_lock_read, METH_NOARGS, "lock_read(): take a shared (read) lock (blocks)."},
    {"trylock_read", (PyCFunction)Lock_trylock_read, METH_NOARGS,
     "trylock_read(): take a shared (read) lock if no writer holds it."},
    {"unlock", (PyCFunction)Lock_unlock, METH_NOARGS, "unlock(): release the lock this thread holds."},
    {"__enter__", (PyCFunction)Lock_lock, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Lock_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Lock_getset[] = {
    {"recoveries", (getter)Lock_get_recoveries, NULL, "How often a dead holder's lock was taken over.", NULL},
    {"type", (getter)Lock_get_type, NULL, "Lock.MUTEX or Lock.RWLOCK.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LockType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pyswoole.shm._shm.Lock",
    .tp_doc = "Lock(type=Lock.MUTEX): a process-shared lock that survives the death of its holder.",
    .tp_basicsize = sizeof(LockObject),
    .tp_dealloc = (destructor)Lock_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Lock_init,
    .tp_methods = Lock_methods,
    .tp_getset = Lock_getset,
};

/* ------------------------------------------------------------------------------------------------
 * Module

 * --------------------------------------------------------------------------------------------- */

static int add_int_constant(PyTypeObject *type, const char *name, long value)
{
    PyObject *v = PyLong_FromLong(value);
    int rc = v == NULL ? -1 : PyDict_SetItemString(type->tp_dict, name, v);
    Py_XDECREF(v);
    return rc;
}

static struct PyModuleDef shm_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyswoole.shm._shm",
    .m_doc = "Shared-memory Table, Atomic, AtomicLong and Lock (C implementation).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__shm(void)
{
    if (PyType_Ready(&TableType) < 0 || PyType_Ready(&TableIterType) < 0 || PyType_Ready(&AtomicType) < 0 ||
        PyType_Ready(&AtomicLongType) < 0 || PyType_Ready(&LockType) < 0)
        return NULL;
    if (add_int_constant(&TableType, "TYPE_INT", TYPE_INT) < 0 ||
        add_int_constant(&TableType, "TYPE_FLOAT", TYPE_FLOAT) < 0 ||
        add_int_constant(&TableType, "TYPE_STRING", TYPE_STRING) < 0 ||
        add_int_constant(&TableType, "KEY_MAX", KEY_MAX) < 0 ||
        add_int_constant(&LockType, "MUTEX", LOCK_MUTEX) < 0 || add_int_constant(&LockType, "RWLOCK", LOCK_RWLOCK) < 0)
        return NULL;
    PyType_Modified(&TableType);
    PyType_Modified(&LockType);
    PyObject *m = PyModule_Create(&shm_module);
    if (m == NULL)
        return NULL;
    TableFullError = PyErr_NewExceptionWithDoc("pyswoole.shm.TableFullError",
                                               "A row could not be added: every row of the table is in use.",
                                               PyExc_RuntimeError, NULL);
    if (TableFullError == NULL || PyModule_AddObjectRef(m, "TableFullError", TableFullError) < 0 ||
        PyModule_AddObjectRef(m, "Table", (PyObject *)&TableType) < 0 ||
        PyModule_AddObjectRef(m, "Atomic", (PyObject *)&AtomicType) < 0 ||
        PyModule_AddObjectRef(m, "AtomicLong", (PyObject *)&AtomicLongType) < 0 ||
        PyModule_AddObjectRef(m, "Lock", (PyObject *)&LockType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
