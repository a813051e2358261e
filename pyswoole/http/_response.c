/* The common case of pyswoole.http.response.Response in C: ``ResponseCore`` holds a response's
 * fields and does ``header()`` for an already validated name and ``end()`` for a keep-alive
 * HTTP/1.1 200 with its Content-Type (what nearly every request does; ``maybe_compress`` decides
 * on compression); every other case goes to the Python implementation (``_set_header``,
 * ``_end``), which is the reference. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

#include "../_heap_type.h"
#include "../coroutine/_runner_state.h"
#include "../protocol/_request.h"
#include "_response.h"

static PyTypeObject *request_type; /* pyswoole.protocol._request.RequestCore */
static PyTypeObject *request_subclass, *parser_subclass; /* memos of type_check_memo */

/* ``request`` as a RequestCore, or NULL with TypeError. */
static RequestCore *as_request(PyObject *request) {
    if (type_check_memo(request, request_type, &request_subclass)) return (RequestCore *)request;
    PyErr_Format(PyExc_TypeError, "expected a request, got %.100s", Py_TYPE(request)->tp_name);
    return NULL;
}

static PyObject *canonical;    /* dict: header name as given -> canonical name (validated) */
static PyObject *date_header;  /* DateHeader: its ``raw`` is the Server and Date lines */
static PyObject *ok_line;      /* bytes: "HTTP/1.1 200 OK\r\n" */
static PyObject *maybe_compress; /* pyswoole.http.compression.maybe_compress */
static PyObject *str_connection, *str_content_type, *str_content_length, *str_transfer_encoding;
static PyObject *str_options, *str_compression;
static PyObject *str_compression_min_length, *str_set_header, *str_end, *str_finish_response, *str_http11;

static int Core_init(ResponseCore *self, PyObject *args, PyObject *kwargs) {
    PyObject *conn, *request;
    if (!PyArg_UnpackTuple(args, "Response", 2, 2, &conn, &request)) return -1;
    int keep_alive = 1;
    if (request != Py_None) {
        RequestCore *fields = as_request(request);
        if (fields == NULL) return -1;
        keep_alive = PyObject_IsTrue(fields->keep_alive);
        if (keep_alive < 0) return -1;
    }
    Py_XSETREF(self->conn, Py_NewRef(conn));
    Py_XSETREF(self->request, Py_NewRef(request));
    if (self->reason == NULL) self->reason = Py_NewRef(Py_None);
    if (self->headers == NULL) self->headers = Py_NewRef(Py_None);
    self->status_code = 200;
    self->state = FRESH;
    self->keep_alive = (char)keep_alive;
    self->detached = 0;
    return 0;
}

static PyObject *fall_back(ResponseCore *self, PyObject *name, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames) {
    PyObject *method = PyObject_GetAttr((PyObject *)self, name);
    if (method == NULL) return NULL;
    PyObject *result = PyObject_Vectorcall(method, args, (size_t)nargs, kwnames);
    Py_DECREF(method);
    return result;
}

static int has_line_break(PyObject *text) {
    if (PyUnicode_KIND(text) == PyUnicode_1BYTE_KIND) {
        const void *data = PyUnicode_1BYTE_DATA(text);
        size_t length = (size_t)PyUnicode_GET_LENGTH(text);
        return memchr(data, '\n', length) != NULL || memchr(data, '\r', length) != NULL;
    }
    return PyUnicode_FindChar(text, '\n', 0, PY_SSIZE_T_MAX, 1) != -1 ||
           PyUnicode_FindChar(text, '\r', 0, PY_SSIZE_T_MAX, 1) != -1;
}

/* Connection, Content-Length and Transfer-Encoding: names the Python implementation handles. */
static int is_special(PyObject *key) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    return (n == 10 && PyUnicode_Compare(key, str_connection) == 0) ||
           (n == 14 && PyUnicode_Compare(key, str_content_length) == 0) ||
           (n == 17 && PyUnicode_Compare(key, str_transfer_encoding) == 0);
}

/* "key: value\r\n" */
static PyObject *header_line(PyObject *key, PyObject *value) {
    if (!PyUnicode_IS_ASCII(key) || !PyUnicode_IS_ASCII(value)) return PyUnicode_FromFormat("%U: %U\r\n", key, value);
    Py_ssize_t key_len = PyUnicode_GET_LENGTH(key), value_len = PyUnicode_GET_LENGTH(value);
    PyObject *line = PyUnicode_New(key_len + value_len + 4, 127);
    if (line == NULL) return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(line);
    memcpy(out, PyUnicode_1BYTE_DATA(key), key_len);
    memcpy(out + key_len, ": ", 2);
    memcpy(out + key_len + 2, PyUnicode_1BYTE_DATA(value), value_len);
    memcpy(out + key_len + 2 + value_len, "\r\n", 2);
    return line;
}

/* Forget the header lines kept in place. */
static void drop_few(ResponseCore *self) {
    int count = self->few_count;
    self->few_count = 0;
    for (int i = 0; i < count; i++) {
        Py_CLEAR(self->few_names[i]);
        Py_CLEAR(self->few_lines[i]);
    }
}

/* The header dict of a response, made from the lines kept in place (``few``) if there are any:
 * borrowed; None when the response has no headers. */
static PyObject *headers_dict(ResponseCore *self) {
    if (self->few_count == 0) return self->headers;
    PyObject *headers = PyDict_New();
    if (headers == NULL) return NULL;
    for (int i = 0; i < self->few_count; i++)
        if (PyDict_SetItem(headers, self->few_names[i], self->few_lines[i]) < 0) {
            Py_DECREF(headers);
            return NULL;
        }
    drop_few(self);
    Py_SETREF(self->headers, headers);
    return headers;
}

static int same_name(PyObject *a, PyObject *b) {
    return a == b || (PyUnicode_GET_LENGTH(a) == PyUnicode_GET_LENGTH(b) && PyUnicode_Compare(a, b) == 0);
}

/* Set the line of the canonical header ``name``: in place while the response has few headers,
 * else in its dict. */
static int store_header(ResponseCore *self, PyObject *name, PyObject *line) {
    if (self->headers == Py_None) {
        for (int i = 0; i < self->few_count; i++)
            if (same_name(self->few_names[i], name)) {
                Py_SETREF(self->few_lines[i], Py_NewRef(line));
                return 0;
            }
        if (self->few_count < FEW_HEADERS) {
            self->few_names[self->few_count] = Py_NewRef(name);
            self->few_lines[self->few_count] = Py_NewRef(line);
            self->few_count++;
            return 0;
        }
        PyObject *headers = headers_dict(self);
        if (headers == NULL) return -1;
    }
    return PyDict_SetItem(self->headers, name, line);
}

/* Header lines made lately, by the (name, value) objects given to ``header()``: handlers pass the
 * same literals again and again, so a line is found by identity instead of being made again. The
 * entries hold their objects, so an address seen here cannot belong to another object meanwhile. */
#define LINE_CACHE_SIZE 16
static struct {
    PyObject *given, *value, *name, *line;
} line_cache[LINE_CACHE_SIZE];

/* header(key, value, format=True) */
static PyObject *Core_header(ResponseCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (self->state != FRESH) Py_RETURN_FALSE;
    if (nargs != 2 || kwnames != NULL || !PyUnicode_CheckExact(args[0]) || !PyUnicode_CheckExact(args[1]) ||
        (self->headers != Py_None && !PyDict_CheckExact(self->headers)))
        return fall_back(self, str_set_header, args, nargs, kwnames);
    PyObject *given = args[0], *value = args[1];
    size_t slot = (((uintptr_t)given >> 4) ^ ((uintptr_t)value >> 4)) % LINE_CACHE_SIZE;
    if (line_cache[slot].given == given && line_cache[slot].value == value) {
        if (store_header(self, line_cache[slot].name, line_cache[slot].line) < 0) return NULL;
        Py_RETURN_TRUE;
    }
    PyObject *key = PyDict_GetItemWithError(canonical, given);
    if (key == NULL) {
        if (PyErr_Occurred()) return NULL;
        return fall_back(self, str_set_header, args, nargs, kwnames);
    }
    if (!PyUnicode_CheckExact(key) || is_special(key) || has_line_break(value))
        return fall_back(self, str_set_header, args, nargs, kwnames);
    PyObject *line = header_line(key, value);
    if (line == NULL) return NULL;
    Py_XSETREF(line_cache[slot].given, Py_NewRef(given));
    Py_XSETREF(line_cache[slot].value, Py_NewRef(value));
    Py_XSETREF(line_cache[slot].name, Py_NewRef(key));
    Py_XSETREF(line_cache[slot].line, Py_NewRef(line));
    int rc = store_header(self, key, line);
    Py_DECREF(line);
    if (rc < 0) return NULL;
    Py_RETURN_TRUE;
}

/* The next header line of a response (from ``few`` or its dict; ``*pos`` starts at 0): 1, or 0 at
 * the end. */
static int next_line(ResponseCore *self, Py_ssize_t *pos, PyObject **name, PyObject **line) {
    if (self->few_count > 0) {
        if (*pos >= self->few_count) return 0;
        *name = self->few_names[*pos];
        *line = self->few_lines[*pos];
        (*pos)++;
        return 1;
    }
    return PyDict_Check(self->headers) && PyDict_Next(self->headers, pos, name, line);
}

/* "Content-Type" among the response's headers: for the few headers of a response, a scan of the
 * names is cheaper than a lookup. */
static int has_content_type(ResponseCore *self) {
    Py_ssize_t pos = 0;
    PyObject *name, *line;
    while (next_line(self, &pos, &name, &line)) {
        if (name == str_content_type) return 1;
        if (!PyUnicode_CheckExact(name)) return PyDict_Contains(self->headers, str_content_type); /* its own __eq__ */
        if (same_name(name, str_content_type)) return 1;
    }
    return 0;
}

/* The UTF-8 text of a header line (str). */
static const char *line_text(PyObject *line, Py_ssize_t *size) {
    if (PyUnicode_CheckExact(line) && PyUnicode_IS_COMPACT_ASCII(line)) {
        *size = PyUnicode_GET_LENGTH(line);
        return (const char *)PyUnicode_DATA(line);
    }
    if (!PyUnicode_Check(line)) {
        PyErr_SetString(PyExc_TypeError, "header lines must be str");
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(line, size);
}

/* True if ``end()`` of this response is the common case (see the top of the file), compression
 * aside. */
static int is_plain_ok(ResponseCore *self) {
    if (self->state != FRESH || self->conn == Py_None || self->status_code != 200 || self->reason != Py_None ||
        !self->keep_alive || self->request == Py_None ||
        !(self->few_count > 0 ? self->headers == Py_None : PyDict_CheckExact(self->headers)))
        return 0;
    int found = has_content_type(self);
    if (found <= 0) return found;
    RequestCore *request = as_request(self->request);
    if (request == NULL) return -1;
    PyObject *version = request->version, *method = request->method;
    if (!(version == str_http11 || (PyUnicode_Check(version) && PyUnicode_Compare(version, str_http11) == 0)))
        return 0;
    return !(PyBytes_Check(method) && PyBytes_GET_SIZE(method) == 4 && memcmp(PyBytes_AS_STRING(method), "HEAD", 4) == 0);
}

static int known_compression(PyObject *conn, Py_ssize_t *minimum);
static PyObject *Conn_finish_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
static PyTypeObject *connection_type; /* HttpConnection */
static PyObject *finish_response_method; /* ConnectionCore.finish_response */
static Py_ssize_t date_raw_offset; /* of DateHeader's ``raw`` slot */

/* The Server and Date lines (a new reference). */
static PyObject *date_raw(void) {
    PyObject *raw = *(PyObject **)((char *)date_header + date_raw_offset);
    if (raw == NULL) PyErr_SetString(PyExc_AttributeError, "DateHeader.raw is not set");
    return Py_XNewRef(raw);
}

/* With ``http_compression`` on and a body of at least its minimum length, ``maybe_compress``
 * (Python) decides: *body is set to the body to send (compressed or not) and *extra to the header
 * lines to add. Return 1 when it was asked, 0 when compression is out of the question, -1 on error. */
static int compress_body(ResponseCore *self, PyObject *data, Py_ssize_t body_len, PyObject **body,
                         PyObject **extra) {
    Py_ssize_t minimum;
    int known = known_compression(self->conn, &minimum);
    if (known < 0) return -1;
    if (known && (minimum < 0 || body_len < minimum)) return 0;
    PyObject *options = PyObject_GetAttr(self->conn, str_options);
    if (options == NULL) return -1;
    PyObject *enabled = PyObject_GetAttr(options, str_compression);
    int result = enabled == NULL ? -1 : PyObject_IsTrue(enabled);
    Py_XDECREF(enabled);
    if (result == 1) {
        PyObject *minimum = PyObject_GetAttr(options, str_compression_min_length);
        Py_ssize_t limit = minimum == NULL ? -1 : PyLong_AsSsize_t(minimum);
        Py_XDECREF(minimum);
        result = limit == -1 && PyErr_Occurred() ? -1 : body_len >= limit;
    }
    if (result == 1) {
        PyObject *raw = PyUnicode_CheckExact(data) ? PyUnicode_AsUTF8String(data) : Py_NewRef(data);
        PyObject *decided = raw == NULL ? NULL : PyObject_CallFunctionObjArgs(maybe_compress, self, raw, options, NULL);
        Py_XDECREF(raw);
        if (decided == NULL || !PyTuple_CheckExact(decided) || PyTuple_GET_SIZE(decided) != 2 ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(decided, 0)) || !PyUnicode_Check(PyTuple_GET_ITEM(decided, 1))) {
            if (decided != NULL) PyErr_SetString(PyExc_TypeError, "maybe_compress must return (bytes, str)");
            Py_XDECREF(decided);
            result = -1;
        } else {
            *body = Py_NewRef(PyTuple_GET_ITEM(decided, 0));
            *extra = Py_NewRef(PyTuple_GET_ITEM(decided, 1));
            Py_DECREF(decided);
        }
    }
    Py_DECREF(options);
    return result;
}

/* "Content-Length: <size>\r\n\r\n" into ``out`` (48 bytes); its length. */
static int content_length(char *out, Py_ssize_t size) {
    static const char prefix[] = "Content-Length: ";
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + size % 10);
        size /= 10;
    } while (size > 0);
    memcpy(out, prefix, sizeof prefix - 1);
    int len = (int)sizeof prefix - 1;
    while (n > 0) out[len++] = digits[--n];
    memcpy(out + len, "\r\n\r\n", 4);
    return len + 4;
}

/* end(data=b"") */
static PyObject *Core_end(ResponseCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *data = nargs == 1 && kwnames == NULL ? args[0] : NULL;
    if (data == NULL || !(PyUnicode_CheckExact(data) || PyBytes_CheckExact(data)))
        return fall_back(self, str_end, args, nargs, kwnames);
    int plain = is_plain_ok(self);
    if (plain < 0) return NULL;
    if (!plain) return fall_back(self, str_end, args, nargs, kwnames);
    const char *body;
    Py_ssize_t body_len;
    if (PyUnicode_CheckExact(data)) {
        body = PyUnicode_AsUTF8AndSize(data, &body_len);
        if (body == NULL) return NULL;
    } else {
        body = PyBytes_AS_STRING(data);
        body_len = PyBytes_GET_SIZE(data);
    }
    PyObject *encoded = NULL, *extra = NULL;
    const char *extra_text = "";
    Py_ssize_t extra_len = 0;
    int asked = compress_body(self, data, body_len, &encoded, &extra);
    if (asked < 0) return NULL;
    if (asked) {
        body = PyBytes_AS_STRING(encoded);
        body_len = PyBytes_GET_SIZE(encoded);
        extra_text = PyUnicode_AsUTF8AndSize(extra, &extra_len);
    }
    PyObject *date = extra_text == NULL ? NULL : date_raw();
    if (date != NULL && !PyBytes_Check(date)) {
        Py_CLEAR(date);
        PyErr_SetString(PyExc_TypeError, "DateHeader.raw must be bytes");
    }
    char length[48];
    int length_len = content_length(length, body_len);
    Py_ssize_t size = date == NULL ? 0 : PyBytes_GET_SIZE(ok_line) + PyBytes_GET_SIZE(date) + extra_len + length_len + body_len;
    Py_ssize_t pos = 0;
    PyObject *name, *line;
    while (date != NULL && next_line(self, &pos, &name, &line)) {
        Py_ssize_t line_len;
        if (line_text(line, &line_len) == NULL) {
            Py_CLEAR(date);
            break;
        }
        size += line_len;
    }
    PyObject *payload = date == NULL ? NULL : PyBytes_FromStringAndSize(NULL, size);
    if (payload == NULL) {
        Py_XDECREF(date);
        Py_XDECREF(encoded);
        Py_XDECREF(extra);
        return NULL;
    }
    char *out = PyBytes_AS_STRING(payload);
    memcpy(out, PyBytes_AS_STRING(ok_line), PyBytes_GET_SIZE(ok_line));
    out += PyBytes_GET_SIZE(ok_line);
    memcpy(out, PyBytes_AS_STRING(date), PyBytes_GET_SIZE(date));
    out += PyBytes_GET_SIZE(date);
    Py_DECREF(date);
    pos = 0;
    while (next_line(self, &pos, &name, &line)) {
        Py_ssize_t line_len;
        const char *text = line_text(line, &line_len);
        memcpy(out, text, line_len);
        out += line_len;
    }
    memcpy(out, extra_text, extra_len);
    out += extra_len;
    memcpy(out, length, length_len);
    out += length_len;
    memcpy(out, body, body_len);
    Py_XDECREF(encoded);
    Py_XDECREF(extra);
    self->state = ENDED;
    PyObject *conn = Py_NewRef(self->conn);
    PyObject *call_args[3] = {conn, (PyObject *)self, payload};
    PyObject *result;
    if (connection_type != NULL && PyObject_TypeCheck(conn, connection_type) &&
        _PyType_Lookup(Py_TYPE(conn), str_finish_response) == finish_response_method)
        result = Conn_finish_response(conn, call_args + 1, 2); /* not overridden: no method call */
    else
        result = PyObject_VectorcallMethod(str_finish_response, call_args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(conn);
    Py_DECREF(payload);
    return result;
}

static int Core_traverse(ResponseCore *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->conn);
    Py_VISIT(self->request);
    Py_VISIT(self->reason);
    Py_VISIT(self->headers);
    for (int i = 0; i < self->few_count; i++) {
        Py_VISIT(self->few_names[i]);
        Py_VISIT(self->few_lines[i]);
    }
    return 0;
}

static int Core_clear(ResponseCore *self) {
    Py_CLEAR(self->conn);
    Py_CLEAR(self->request);
    Py_CLEAR(self->reason);
    Py_CLEAR(self->headers);
    drop_few(self);
    return 0;
}

static void Core_dealloc(ResponseCore *self) {
    heap_type_dealloc((PyObject *)self, (inquiry)Core_clear);
}

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *names, *date, *line, *compress;
    if (!PyArg_ParseTuple(args, "O!OO!O", &PyDict_Type, &names, &date, &PyBytes_Type, &line, &compress))
        return NULL;
    Py_ssize_t raw = member_offset((PyObject *)Py_TYPE(date), "raw", T_OBJECT_EX);
    if (raw < 0) return NULL;
    date_raw_offset = raw;
    Py_XSETREF(maybe_compress, Py_NewRef(compress));
    Py_XSETREF(canonical, Py_NewRef(names));
    Py_XSETREF(date_header, Py_NewRef(date));
    Py_XSETREF(ok_line, Py_NewRef(line));
    Py_RETURN_NONE;
}

static PyMethodDef Core_methods[] = {
    {"header", (PyCFunction)(void (*)(void))Core_header, METH_FASTCALL | METH_KEYWORDS,
     "header(key, value, format=True): set (replace) a response header."},
    {"end", (PyCFunction)(void (*)(void))Core_end, METH_FASTCALL | METH_KEYWORDS,
     "end(data=b''): send the response and finish it."},
    {NULL},
};

static PyMemberDef Core_members[] = {
    {"conn", T_OBJECT, offsetof(ResponseCore, conn), 0, NULL},
    {"request", T_OBJECT, offsetof(ResponseCore, request), 0, NULL},
    {"reason", T_OBJECT, offsetof(ResponseCore, reason), 0, NULL},
    {"status_code", T_INT, offsetof(ResponseCore, status_code), 0, NULL},
    {"state", T_INT, offsetof(ResponseCore, state), 0, NULL},
    {"keep_alive", T_BOOL, offsetof(ResponseCore, keep_alive), 0, NULL},
    {"detached", T_BOOL, offsetof(ResponseCore, detached), 0, NULL},
    {NULL},
};

/* ``headers``: a dict (made from the lines kept in place on first use) or None. */
static PyObject *Core_get_headers(ResponseCore *self, void *closure) {
    PyObject *headers = headers_dict(self);
    return headers == NULL ? NULL : Py_NewRef(headers);
}

static int Core_set_headers(ResponseCore *self, PyObject *value, void *closure) {
    if (value == NULL) value = Py_None;
    drop_few(self);
    Py_SETREF(self->headers, Py_NewRef(value));
    return 0;
}

static PyGetSetDef Core_getset[] = {
    {"headers", (getter)Core_get_headers, (setter)Core_set_headers,
     "dict: canonical header name -> its line (None: no headers)", NULL},
    {NULL},
};

static PyType_Slot Core_slots[] = {
    {Py_tp_getset, Core_getset},
    {Py_tp_init, Core_init},
    {Py_tp_dealloc, Core_dealloc},
    {Py_tp_traverse, Core_traverse},
    {Py_tp_clear, Core_clear},
    {Py_tp_methods, Core_methods},
    {Py_tp_members, Core_members},
    {Py_tp_doc, "The fields of a Response and its common case (see pyswoole.http.response)."},
    {0, NULL},
};

static PyType_Spec Core_spec = {
    .name = "pyswoole.http._response.ResponseCore",
    .basicsize = sizeof(ResponseCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Core_slots,
};


/* -- ConnectionCore: the per-read path of HttpConnection ---------------------------------------
 * A field-less base class of pyswoole.http.connection.HttpConnection: ``data_received`` and
 * ``finish_response`` in C for the common case (an eager request handler, no static file, the
 * connection free), calling the Python methods of the connection for everything else
 * (``_dispatch``, ``write``, ``flush``, ``_drain_queue``, ``refuse``, ``upgrade``). The
 * connection's fields are the ``__slots__`` of the Python classes, read at their offsets, found
 * once by ``bind_connection``. */

enum {
    F_WORKER, F_FD, F_BYTES_IN, F_BYTES_OUT, F_LAST_TIME, F_TRANSPORT, F_CLOSED_BY_SERVER, F_PAUSED_WRITING,
    F_PARSER, F_ACTIVE, F_QUEUE, F_OUT, F_OUT_SIZE, F_HEAD_SINCE, F_ROUTE, F_COMPRESSION_MIN, F_COUNT
};
static const char *field_names[F_COUNT] = {
    "worker", "fd", "bytes_in", "bytes_out", "last_time", "transport", "closed_by_server", "paused_writing",
    "parser", "active", "queue", "out", "out_size", "head_since", "route", "compression_min",
};
static Py_ssize_t field_offsets[F_COUNT];
static PyTypeObject *parser_type;     /* pyswoole.http._parser.Parser */
static Py_ssize_t parser_stopped_offset; /* of its ``stopped`` flag (a char) */
static PyTypeObject *response_type;   /* pyswoole.http.response.Response */
static PyObject *runner_globals;      /* pyswoole.coroutine.runner.__dict__ */
static RunnerState *runner_state;     /* pyswoole.coroutine.runner._state */
static PyObject *pending;             /* runner._PENDING */
static PyObject *str_materialize, *str_ended, *str_take_over;
static PyObject *str_plain_in_greenlet, *str_request, *str_finish_later, *str_handler_raised;
static PyObject *str_feed, *str_refuse, *str_upgrade, *str_stopped, *str_error, *str_upgrade_data;
static PyObject *str_dispatch, *str_write_method, *str_flush, *str_drain_queue, *str_remove_uploads;
static PyObject *str_is_closing, *str_pause_reading, *str_close_method, *str_clock, *str_registry, *str_touch;
static PyObject *str_request_count, *str_max_request, *str_recycle;
static PyObject *str_end_public, *str_append, *http_error, *zero, *zero_float, *empty_bytes_object, *method_get, *method_head;

#define FLUSH_SIZE (64 * 1024)
#define MAX_QUEUED 64

static inline PyObject *field(PyObject *self, int which) {
    return *(PyObject **)((char *)self + field_offsets[which]);
}

/* A borrowed field; NULL with AttributeError when unset. */
static PyObject *get_field(PyObject *self, int which) {
    PyObject *value = field(self, which);
    if (value == NULL) PyErr_Format(PyExc_AttributeError, "connection has no %s", field_names[which]);
    return value;
}

static void set_field(PyObject *self, int which, PyObject *value) {
    PyObject **slot = (PyObject **)((char *)self + field_offsets[which]);
    PyObject *old = *slot;
    *slot = Py_NewRef(value);
    Py_XDECREF(old);
}

/* 1 and the connection's ``compression_min`` (-1: compression off) for an HttpConnection, 0 for
 * another object, -1 on error. */
static int known_compression(PyObject *conn, Py_ssize_t *minimum) {
    if (connection_type == NULL || !PyObject_TypeCheck(conn, connection_type)) return 0;
    PyObject *value = get_field(conn, F_COMPRESSION_MIN);
    if (value == NULL) return -1;
    *minimum = PyLong_AsSsize_t(value);
    return *minimum == -1 && PyErr_Occurred() ? -1 : 1;
}

/* value + amount (a new reference) */
static PyObject *add_count(PyObject *value, Py_ssize_t amount) {
    int overflow = 1;
    long long current = PyLong_CheckExact(value) ? PyLong_AsLongLongAndOverflow(value, &overflow) : 0;
    if (!overflow && current >= 0 && current < (1LL << 62)) return PyLong_FromLongLong(current + amount);
    PyObject *delta = PyLong_FromSsize_t(amount); /* not a plain int of a sane size: Python's addition */
    PyObject *sum = delta == NULL ? NULL : PyNumber_Add(value, delta);
    Py_XDECREF(delta);
    return sum;
}

/* self.<which> += amount (Python ints) */
static int add_to_field(PyObject *self, int which, Py_ssize_t amount) {
    PyObject *value = get_field(self, which);
    if (value == NULL) return -1;
    PyObject *sum = add_count(value, amount);
    if (sum == NULL) return -1;
    set_field(self, which, sum);
    Py_DECREF(sum);
    return 0;
}

static PyObject *call_method0(PyObject *self, PyObject *name) {
    return PyObject_VectorcallMethod(name, &self, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *call_method1(PyObject *self, PyObject *name, PyObject *arg) {
    PyObject *args[2] = {self, arg};
    return PyObject_VectorcallMethod(name, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* Call a method for its effect only. */
static int run_method1(PyObject *self, PyObject *name, PyObject *arg) {
    PyObject *result = arg == NULL ? call_method0(self, name) : call_method1(self, name, arg);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

/* The ``write`` and ``is_closing`` methods of the transport class seen last (uvloop's), found
 * once: called as functions of the transport, they skip the method lookup of each call. Kept only
 * for method descriptors (what ``PyObject_VectorcallMethod`` calls the same way) of a class with
 * plain attribute lookup and no instance dicts (nothing can shadow them per instance). */
static PyTypeObject *transport_class;
static PyObject *transport_write, *transport_is_closing;

/* transport.<name>(arg) (arg may be NULL), a new reference. */
static PyObject *call_transport(PyObject *transport, PyObject *name, PyObject *arg) {
    if (Py_TYPE(transport) != transport_class) {
        PyTypeObject *cls = Py_TYPE(transport);
        PyObject *write = _PyType_Lookup(cls, str_write_method), *closing = _PyType_Lookup(cls, str_is_closing);
        if (cls->tp_dictoffset != 0 || cls->tp_getattro != PyObject_GenericGetAttr || write == NULL ||
            closing == NULL || !PyType_HasFeature(Py_TYPE(write), Py_TPFLAGS_METHOD_DESCRIPTOR) ||
            !PyType_HasFeature(Py_TYPE(closing), Py_TPFLAGS_METHOD_DESCRIPTOR))
            return arg == NULL ? call_method0(transport, name) : call_method1(transport, name, arg);
        Py_XSETREF(transport_write, Py_NewRef(write));
        Py_XSETREF(transport_is_closing, Py_NewRef(closing));
        Py_XSETREF(transport_class, (PyTypeObject *)Py_NewRef(cls));
    }
    PyObject *method = name == str_write_method ? transport_write : transport_is_closing;
    PyObject *args[2] = {transport, arg};
    return PyObject_Vectorcall(method, args, arg == NULL ? 1 : 2, NULL);
}

/* transport.<name>(arg) for its effect. */
static int run_transport(PyObject *transport, PyObject *name, PyObject *arg) {
    PyObject *result = call_transport(transport, name, arg);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

static int is_closing(PyObject *transport) {
    PyObject *result = call_transport(transport, str_is_closing, NULL);
    if (result == NULL) return -1;
    int closing = PyObject_IsTrue(result);
    Py_DECREF(result);
    return closing;
}

/* time.monotonic(), as one float object shared by the calls within a millisecond: it becomes
 * ``head_since`` of every connection that goes idle, which the housekeeping compares once a second
 * with a timeout of seconds; a float per connection would be a cache miss at its next read
 * (dropping the old value), a shared one stays in the cache. */
static PyObject *monotonic(void) {
    static PyObject *last;
    static double last_value;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double value = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
    if (last == NULL || value - last_value >= 1e-3) {
        PyObject *fresh = PyFloat_FromDouble(value);
        if (fresh == NULL) return NULL;
        Py_XSETREF(last, fresh);
        last_value = value;
    }
    return Py_NewRef(last);
}

/* runner._ended(prev), or its inlined common case (see runner.call). */
static int runner_ended(PyObject *prev) {
    if (runner_state->current == pending) {
        Py_SETREF(runner_state->current, Py_NewRef(prev));
        return 0;
    }
    PyObject *ended = PyDict_GetItemWithError(runner_globals, str_ended);
    if (ended == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "runner._ended is missing");
        return -1;
    }
    PyObject *result = PyObject_CallOneArg(ended, prev);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

/* The request handler failed before it suspended: Exception subclasses go to
 * ``self._handler_raised(response, exc)`` (log, 500), others propagate. */
static int handler_raised(PyObject *self, PyObject *response) {
    if (!PyErr_ExceptionMatches(PyExc_Exception)) return -1;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL) PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    PyObject *args[3] = {self, response, value};
    PyObject *result = PyObject_VectorcallMethod(str_handler_raised, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_XDECREF(value);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

/* runner.call(handler, (request, response), self._finish_later, (response,), "request") for the
 * handler of ``route``, inlined; then the automatic end(). */
static int run_handler(PyObject *self, PyObject *handler, PyObject *request, PyObject *response) {
    PyObject *prev = Py_NewRef(runner_state->current);
    if (prev == pending) {
        PyObject *materialize = PyDict_GetItemWithError(runner_globals, str_materialize);
        Py_SETREF(prev, materialize == NULL ? NULL : PyObject_CallNoArgs(materialize));
        if (prev == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "runner._materialize is missing");
            return -1;
        }
    }
    Py_SETREF(runner_state->current, Py_NewRef(pending));
    if (runner_state->pending_parent != prev) Py_SETREF(runner_state->pending_parent, Py_NewRef(prev));
    PyObject *args[2] = {request, response};
    PyObject *coro = PyObject_Vectorcall(handler, args, 2, NULL);
    PyObject *yielded = NULL;
    PySendResult status = PYGEN_RETURN;
    if (coro == NULL) {
        status = PYGEN_ERROR;
    } else if (Py_IS_TYPE(coro, &PyCoro_Type)) {
        status = PyIter_Send(coro, Py_None, &yielded);
        if (status == PYGEN_RETURN) Py_CLEAR(yielded);
    }
    int rc = 0;
    if (status == PYGEN_NEXT) {
        /* suspended: a task takes the rest over (runner._take_over, as runner.call does) */
        PyObject *take_over = PyDict_GetItemWithError(runner_globals, str_take_over);
        PyObject *finish_later = take_over == NULL ? NULL : PyObject_GetAttr(self, str_finish_later);
        PyObject *wrap_args = finish_later == NULL ? NULL : PyTuple_Pack(1, response);
        PyObject *task = NULL;
        if (wrap_args != NULL) {
            PyObject *call_args[6] = {prev, coro, yielded, str_request, finish_later, wrap_args};
            task = PyObject_Vectorcall(take_over, call_args, 6, NULL);
        } else if (take_over == NULL && !PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "runner._take_over is missing");
        }
        Py_XDECREF(finish_later);
        Py_XDECREF(wrap_args);
        Py_XDECREF(yielded);
        Py_XDECREF(coro);
        Py_DECREF(prev);
        if (task == NULL) return -1;
        Py_DECREF(task);
        return 0;
    }
    Py_XDECREF(coro);
    if (status == PYGEN_ERROR) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        rc = runner_ended(prev);
        Py_DECREF(prev);
        if (rc < 0) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
            return -1;
        }
        PyErr_Restore(type, value, traceback);
        return handler_raised(self, response);
    }
    rc = runner_ended(prev);
    Py_DECREF(prev);
    if (rc < 0) return -1;
    ResponseCore *core = (ResponseCore *)response;
    if (core->state != ENDED && !core->detached) return run_method1(response, str_end_public, NULL);
    return 0;
}

/* True when the static handler may want ``request`` (a GET or HEAD under one of its URL prefixes). */
static int wants_static(RequestCore *request, PyObject *prefixes) {
    if (PyTuple_GET_SIZE(prefixes) == 0) return 0;
    PyObject *method = request->method;
    int match;
    if (PyBytes_CheckExact(method)) {
        const char *name = PyBytes_AS_STRING(method);
        Py_ssize_t length = PyBytes_GET_SIZE(method);
        match = (length == 3 && memcmp(name, "GET", 3) == 0) || (length == 4 && memcmp(name, "HEAD", 4) == 0);
    } else {
        match = PyObject_RichCompareBool(method, method_get, Py_EQ) == 1 ||
                PyObject_RichCompareBool(method, method_head, Py_EQ) == 1;
    }
    if (!match) return 0;
    PyObject *url = request->url;
    int found = 0;
    if (PyBytes_Check(url)) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(prefixes) && !found; i++) {
            PyObject *prefix = PyTuple_GET_ITEM(prefixes, i);
            found = PyBytes_Check(prefix) && PyBytes_GET_SIZE(url) >= PyBytes_GET_SIZE(prefix) &&
                    memcmp(PyBytes_AS_STRING(url), PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix)) == 0;
        }
    } else {
        found = 1; /* not bytes: let the Python path decide */
    }
    return found;
}

/* HttpConnection._dispatch(request), with its common case in C. */
static int dispatch(PyObject *self, PyObject *request) {
    PyObject *route = field(self, F_ROUTE);
    if (route == NULL || !PyTuple_CheckExact(route) || PyTuple_GET_SIZE(route) != 3)
        return run_method1(self, str_dispatch, request);
    PyObject *handler = PyTuple_GET_ITEM(route, 0), *prefixes = PyTuple_GET_ITEM(route, 1);
    if (!PyObject_IsTrue(PyTuple_GET_ITEM(route, 2))) { /* a plain handler: greenlets need Python */
        PyObject *greenlet = PyDict_GetItemWithError(runner_globals, str_plain_in_greenlet);
        if (greenlet == NULL && PyErr_Occurred()) return -1;
        if (greenlet != NULL && PyObject_IsTrue(greenlet)) return run_method1(self, str_dispatch, request);
    }
    RequestCore *fields = as_request(request);
    if (fields == NULL) return -1;
    int wanted = PyTuple_Check(prefixes) ? wants_static(fields, prefixes) : 1;
    if (wanted) return run_method1(self, str_dispatch, request);
    PyObject *fd = get_field(self, F_FD);
    if (fd == NULL) return -1;
    Py_SETREF(fields->conn, Py_NewRef(self));
    Py_SETREF(fields->fd, Py_NewRef(fd));
    int keep_alive = PyObject_IsTrue(fields->keep_alive);
    if (keep_alive < 0) return -1;
    ResponseCore *response = (ResponseCore *)response_type->tp_alloc(response_type, 0);
    if (response == NULL) return -1;
    response->conn = Py_NewRef(self);
    response->request = Py_NewRef(request);
    response->reason = Py_NewRef(Py_None);
    response->headers = Py_NewRef(Py_None);
    response->status_code = 200;
    response->state = FRESH;
    response->keep_alive = (char)keep_alive;
    set_field(self, F_ACTIVE, (PyObject *)response);
    int rc = run_handler(self, handler, request, (PyObject *)response);
    Py_DECREF(response);
    return rc;
}

/* The worker's ``clock``, ``request_count`` and ``max_request``: slots of pyswoole's Worker, read
 * and written at their offsets (found once per worker class); another object goes through
 * getattr/setattr. */
enum { W_CLOCK, W_REQUEST_COUNT, W_MAX_REQUEST, W_COUNT };
static PyTypeObject *worker_class; /* the class whose offsets are known, or NULL */
static Py_ssize_t worker_offsets[W_COUNT];
static PyObject **worker_names[W_COUNT] = {&str_clock, &str_request_count, &str_max_request};

/* The slot of field ``which`` in ``worker``, or NULL when its class has no such slot. */
static PyObject **worker_slot(PyObject *worker, int which) {
    if (Py_TYPE(worker) != worker_class) {
        Py_ssize_t offsets[W_COUNT];
        for (int i = 0; i < W_COUNT; i++)
            if ((offsets[i] = member_offset((PyObject *)Py_TYPE(worker), PyUnicode_AsUTF8(*worker_names[i]),
                                            T_OBJECT_EX)) < 0) {
                PyErr_Clear(); /* not such a slot: getattr/setattr */
                return NULL;
            }
        memcpy(worker_offsets, offsets, sizeof(offsets));
        Py_XSETREF(worker_class, (PyTypeObject *)Py_NewRef(Py_TYPE(worker)));
    }
    return (PyObject **)((char *)worker + worker_offsets[which]);
}

/* worker.<which>, a new reference. */
static PyObject *worker_get(PyObject *worker, int which) {
    PyObject **slot = worker_slot(worker, which);
    if (slot != NULL && *slot != NULL) return Py_NewRef(*slot);
    return PyObject_GetAttr(worker, *worker_names[which]);
}

static int worker_set(PyObject *worker, int which, PyObject *value) {
    PyObject **slot = worker_slot(worker, which);
    if (slot == NULL) return PyObject_SetAttr(worker, *worker_names[which], value);
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

static PyObject *serve_read(PyObject *self, PyObject *worker, PyObject *data);

/* Empty lists kept for the next read's requests and ``out`` (see serve_read), or NULL. */
static PyObject *spare_requests, *spare_out;

/* A list for one read: the spare one (which keeps the item space of its last use) or a new one. */
static PyObject *take_list(PyObject **spare) {
    PyObject *list = *spare;
    *spare = NULL;
    return list != NULL ? list : PyList_New(0);
}

/* Done with a list taken for a read (a reference is given): emptied and kept as the spare one if
 * nothing else holds it. */
static void give_back_list(PyObject **spare, PyObject *list) {
    if (*spare != NULL || Py_REFCNT(list) != 1 || !PyList_CheckExact(list) ||
        ((PyListObject *)list)->allocated > MAX_QUEUED) { /* (a long list: its space is not kept) */
        Py_DECREF(list);
        return;
    }
    Py_ssize_t count = PyList_GET_SIZE(list);
    PyObject **items = ((PyListObject *)list)->ob_item;
    Py_SET_SIZE(list, 0); /* emptied before the items go: nothing else can reach the list */
    for (Py_ssize_t i = 0; i < count; i++) Py_DECREF(items[i]);
    if (*spare == NULL) *spare = list;
    else Py_DECREF(list); /* the items' deallocation ran code that kept another list */
}

static PyObject *parser_feed_method; /* Parser.feed, the method descriptor */
typedef PyObject *(*fastcall_function)(PyObject *, PyObject *const *, Py_ssize_t);
static fastcall_function parser_feed_into; /* the C function of Parser.feed_into */

/* parser.feed(data): the requests it completed (a list to give back with give_back_list), through
 * the C function of ``Parser.feed_into`` unless the parser's class replaces ``feed``. */
static PyObject *feed(PyObject *parser, PyObject *data) {
    if (parser_feed_into == NULL || !type_check_memo(parser, parser_type, &parser_subclass) ||
        _PyType_Lookup(Py_TYPE(parser), str_feed) != parser_feed_method)
        return call_method1(parser, str_feed, data);
    PyObject *requests = take_list(&spare_requests);
    if (requests == NULL) return NULL;
    PyObject *args[2] = {data, requests};
    PyObject *result = parser_feed_into(parser, args, 2);
    if (result == NULL) {
        give_back_list(&spare_requests, requests);
        return NULL;
    }
    Py_DECREF(result);
    return requests;
}

/* data_received(data): parse, answer what is complete, write the answers of this read at once. */
static PyObject *Conn_data_received(PyObject *self, PyObject *data) {
    if (!PyObject_TypeCheck(self, connection_type)) {
        PyErr_SetString(PyExc_TypeError, "ConnectionCore methods need an HttpConnection");
        return NULL;
    }
    PyObject *worker = get_field(self, F_WORKER);
    Py_ssize_t size = PyObject_Length(data);
    if (worker == NULL || size < 0 || add_to_field(self, F_BYTES_IN, size) < 0) return NULL;
    Py_INCREF(worker); /* handlers run below: hold what is used after them */
    PyObject *result = serve_read(self, worker, data);
    Py_DECREF(worker);
    return result;
}

/* data_received's work once the bytes are counted. */
static PyObject *serve_read(PyObject *self, PyObject *worker, PyObject *data) {
    PyObject *clock = worker_get(worker, W_CLOCK);
    if (clock == NULL) return NULL;
    PyObject *last_time = get_field(self, F_LAST_TIME);
    int same = last_time == NULL ? -1 : last_time == clock ? 1 : PyObject_RichCompareBool(last_time, clock, Py_EQ);
    if (same == 0) { /* once a second: the registry row (last_time and byte counts) */
        set_field(self, F_LAST_TIME, clock);
        PyObject *registry = PyObject_GetAttr(worker, str_registry);
        PyObject *args[5] = {registry, field(self, F_FD), clock, field(self, F_BYTES_IN), field(self, F_BYTES_OUT)};
        PyObject *result = registry == NULL ? NULL
                                            : PyObject_VectorcallMethod(str_touch, args, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_XDECREF(registry);
        same = result == NULL ? -1 : 1;
        Py_XDECREF(result);
    }
    Py_DECREF(clock);
    if (same < 0) return NULL;
    PyObject *parser = get_field(self, F_PARSER);
    if (parser == NULL) return NULL;
    if (parser == Py_None) Py_RETURN_NONE;
    Py_INCREF(parser);
    PyObject *requests = feed(parser, data);
    if (requests == NULL) {
        Py_DECREF(parser);
        if (!PyErr_ExceptionMatches(http_error)) return NULL;
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        Py_XDECREF(type);
        Py_XDECREF(traceback);
        int rc = run_method1(self, str_refuse, value);
        Py_XDECREF(value);
        if (rc < 0) return NULL;
        Py_RETURN_NONE;
    }
    Py_ssize_t count = PyList_GET_SIZE(requests);
    int rc = 0;
    if (count > 0) {
        set_field(self, F_HEAD_SINCE, zero_float); /* whole requests arrived: the header clock stops */
        PyObject *queue = get_field(self, F_QUEUE);
        PyObject *out = take_list(&spare_out);
        if (queue == NULL || out == NULL) {
            Py_XDECREF(out);
            Py_DECREF(requests);
            Py_DECREF(parser);
            return NULL;
        }
        Py_INCREF(queue);
        set_field(self, F_OUT, out);
        set_field(self, F_OUT_SIZE, zero);
        for (Py_ssize_t i = 0; i < count && rc == 0; i++) {
            if (field(self, F_CLOSED_BY_SERVER) == Py_True) break; /* an answer closed the connection */
            PyObject *request = PyList_GET_ITEM(requests, i);
            Py_ssize_t queued = PyObject_Length(queue);
            if (queued < 0) rc = -1;
            else if (field(self, F_ACTIVE) == Py_None && queued == 0) rc = dispatch(self, request);
            else rc = run_method1(queue, str_append, request);
        }
        set_field(self, F_OUT, Py_None);
        PyObject *transport = Py_XNewRef(field(self, F_TRANSPORT));
        Py_ssize_t pieces = PyList_GET_SIZE(out);
        if (rc == 0 && pieces > 0 && transport != NULL) {
            PyObject *payload = pieces == 1 ? Py_NewRef(PyList_GET_ITEM(out, 0)) : _PyBytes_Join(empty_bytes_object, out);
            rc = payload == NULL ? -1 : run_transport(transport, str_write_method, payload);
            Py_XDECREF(payload);
        }
        give_back_list(&spare_out, out);
        Py_ssize_t queued = rc == 0 ? PyObject_Length(queue) : 0;
        Py_DECREF(queue);
        if (queued < 0) rc = -1;
        if (rc == 0 && queued > MAX_QUEUED && transport != NULL) rc = run_method1(transport, str_pause_reading, NULL);
        Py_XDECREF(transport);
        if (rc == 0) { /* the worker's request count; at max_request it recycles itself */
            PyObject *total = worker_get(worker, W_REQUEST_COUNT);
            PyObject *sum = total == NULL ? NULL : add_count(total, count);
            rc = sum == NULL ? -1 : worker_set(worker, W_REQUEST_COUNT, sum);
            PyObject *limit = rc < 0 ? NULL : worker_get(worker, W_MAX_REQUEST);
            if (limit == NULL) rc = -1;
            else if (PyObject_IsTrue(limit) && PyObject_RichCompareBool(sum, limit, Py_GE) == 1)
                rc = run_method1(worker, str_recycle, NULL);
            Py_XDECREF(limit);
            Py_XDECREF(sum);
            Py_XDECREF(total);
        }
    }
    give_back_list(&spare_requests, requests);
    if (rc == 0) {
        int is_stopped;
        if (type_check_memo(parser, parser_type, &parser_subclass)) {
            is_stopped = *((char *)parser + parser_stopped_offset);
        } else {
            PyObject *stopped = PyObject_GetAttr(parser, str_stopped);
            is_stopped = stopped == NULL ? -1 : PyObject_IsTrue(stopped);
            Py_XDECREF(stopped);
        }
        if (is_stopped < 0) rc = -1;
        else if (is_stopped) {
            PyObject *error = PyObject_GetAttr(parser, str_error);
            PyObject *upgrade_data = error == NULL ? NULL : PyObject_GetAttr(parser, str_upgrade_data);
            if (upgrade_data == NULL) rc = -1;
            else if (error != Py_None) rc = run_method1(self, str_refuse, error);
            else if (upgrade_data != Py_None) rc = run_method1(self, str_upgrade, NULL);
            Py_XDECREF(error);
            Py_XDECREF(upgrade_data);
        }
    }
    Py_DECREF(parser);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* finish_response(response, payload): write the last bytes of ``response`` and give the
 * connection to the next request. */
static PyObject *Conn_finish_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyObject_TypeCheck(self, connection_type) || !PyObject_TypeCheck(args[0], response_type)) {
        PyErr_SetString(PyExc_TypeError, "finish_response(response, payload) of an HttpConnection");
        return NULL;
    }
    PyObject *response = args[0], *payload = args[1];
    ResponseCore *core = (ResponseCore *)response;
    PyObject *out = field(self, F_OUT), *out_size = field(self, F_OUT_SIZE);
    PyObject *transport = get_field(self, F_TRANSPORT);
    if (transport == NULL || out_size == NULL) return NULL;
    int ok;
    Py_ssize_t buffered = PyLong_AsSsize_t(out_size);
    if (buffered == -1 && PyErr_Occurred()) return NULL;
    int batched = out != NULL && PyList_CheckExact(out) && buffered < FLUSH_SIZE;
    if ((batched || out == Py_None) && field(self, F_PAUSED_WRITING) == Py_False) {
        /* the common cases, as ``write`` does them: a response made while the received bytes are
         * handled joins that read's answers; one finished later (its handler suspended) is written */
        PyObject *sink = Py_NewRef(batched ? out : transport); /* held: is_closing runs a method */
        int closing = is_closing(transport);
        ok = closing == 0;
        Py_ssize_t size = ok ? PyObject_Length(payload) : 0;
        int failed = closing < 0 || size < 0 || (ok && add_to_field(self, F_BYTES_OUT, size) < 0);
        if (!failed && ok && batched) {
            PyObject *total = PyLong_FromSsize_t(buffered + size);
            if (total != NULL) set_field(self, F_OUT_SIZE, total);
            failed = total == NULL || PyList_Append(sink, payload) < 0;
            Py_XDECREF(total);
        } else if (!failed && ok) {
            failed = run_transport(sink, str_write_method, payload) < 0;
        }
        Py_DECREF(sink);
        if (failed) return NULL;
    } else {
        PyObject *written = call_method1(self, str_write_method, payload);
        if (written == NULL) return NULL;
        ok = PyObject_IsTrue(written);
        Py_DECREF(written);
    }
    PyObject *request = core->request;
    if (request != NULL && request != Py_None) {
        RequestCore *fields = as_request(request);
        if (fields == NULL) return NULL;
        int has_files = PyObject_IsTrue(fields->files);
        if (has_files < 0) return NULL;
        if (has_files && run_method1(self, str_remove_uploads, request) < 0) return NULL;
    }
    if (!core->keep_alive) {
        if (run_method1(self, str_flush, NULL) < 0) return NULL;
        set_field(self, F_CLOSED_BY_SERVER, Py_True);
        transport = get_field(self, F_TRANSPORT);
        if (transport == NULL || run_method1(transport, str_close_method, NULL) < 0) return NULL;
    }
    if (field(self, F_ACTIVE) == response) {
        set_field(self, F_ACTIVE, Py_None);
        PyObject *queue = get_field(self, F_QUEUE);
        Py_ssize_t queued = queue == NULL ? -1 : PyObject_Length(queue);
        if (queued < 0) return NULL;
        if (queued > 0) {
            if (run_method1(self, str_drain_queue, NULL) < 0) return NULL;
        } else {
            PyObject *now = monotonic();
            if (now == NULL) return NULL;
            set_field(self, F_HEAD_SINCE, now);
            Py_DECREF(now);
        }
    }
    return PyBool_FromLong(ok);
}

static PyMethodDef Conn_methods[] = {
    {"data_received", (PyCFunction)Conn_data_received, METH_O,
     "Parse received bytes, answer the complete requests, write their answers together."},
    {"finish_response", (PyCFunction)(void (*)(void))Conn_finish_response, METH_FASTCALL,
     "finish_response(response, payload): write the last bytes of a response; the next request's turn."},
    {NULL},
};

static PyType_Slot Conn_slots[] = {
    {Py_tp_methods, Conn_methods},
    {Py_tp_doc, "The per-read path of an HTTP connection (see pyswoole.http.connection)."},
    {0, NULL},
};

static PyType_Spec Conn_spec = {
    .name = "pyswoole.http._response.ConnectionCore",
    .basicsize = sizeof(PyObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = Conn_slots,
};

/* bind_connection(connection_class, response_class, parser_class, runner_module) */
static PyObject *bind_connection(PyObject *module, PyObject *args) {
    PyObject *cls, *response_cls, *parser_cls, *runner;
    if (!PyArg_ParseTuple(args, "O!O!O!O", &PyType_Type, &cls, &PyType_Type, &response_cls, &PyType_Type, &parser_cls,
                          &runner))
        return NULL;
    Py_ssize_t stopped = member_offset(parser_cls, "stopped", T_BOOL);
    if (stopped < 0) return NULL;
    parser_stopped_offset = stopped;
    Py_XSETREF(parser_type, (PyTypeObject *)Py_NewRef(parser_cls));
    PyObject *feed_method = PyObject_GetAttrString(parser_cls, "feed");
    PyObject *feed_into = feed_method == NULL ? NULL : PyObject_GetAttrString(parser_cls, "feed_into");
    if (feed_into == NULL) {
        Py_XDECREF(feed_method);
        return NULL;
    }
    Py_XSETREF(parser_feed_method, feed_method);
    parser_feed_into = NULL; /* not the C method of _parser.c: every parser is fed through ``feed`` */
    if (Py_IS_TYPE(feed_into, &PyMethodDescr_Type)) {
        PyMethodDef *def = ((PyMethodDescrObject *)feed_into)->d_method;
        if ((def->ml_flags & (METH_O | METH_FASTCALL | METH_KEYWORDS | METH_NOARGS | METH_VARARGS)) == METH_FASTCALL)
            parser_feed_into = (fastcall_function)(void (*)(void))def->ml_meth;
    }
    Py_DECREF(feed_into);
    for (int i = 0; i < F_COUNT; i++)
        if ((field_offsets[i] = member_offset(cls, field_names[i], T_OBJECT_EX)) < 0) return NULL;
    PyObject *globals = PyObject_GetAttrString(runner, "__dict__");
    if (globals == NULL) return NULL;
    PyObject *marker = PyDict_GetItemString(globals, "_PENDING");
    if (marker == NULL) {
        Py_DECREF(globals);
        return PyErr_Format(PyExc_TypeError, "the runner module has no _PENDING");
    }
    PyObject *state = runner_state_of(globals);
    if (state == NULL) {
        Py_DECREF(globals);
        return NULL;
    }
    Py_XSETREF(pending, Py_NewRef(marker));
    Py_XSETREF(runner_globals, globals);
    Py_XSETREF(runner_state, (RunnerState *)state);
    Py_XSETREF(connection_type, (PyTypeObject *)Py_NewRef(cls));
    Py_XSETREF(response_type, (PyTypeObject *)Py_NewRef(response_cls));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(canonical_names, date_header, ok_line, maybe_compress): what the fast paths use."},
    {"bind_connection", bind_connection, METH_VARARGS,
     "bind_connection(HttpConnection, Response, Parser, runner_module): what ConnectionCore serves."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pyswoole.http._response", "The common case of HTTP responses.", -1, module_methods,
};

#define INTERN(var, text)                                  \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
    return NULL

PyMODINIT_FUNC PyInit__response(void) {
    INTERN(str_connection, "Connection");
    INTERN(str_content_type, "Content-Type");
    INTERN(str_content_length, "Content-Length");
    INTERN(str_transfer_encoding, "Transfer-Encoding");
    INTERN(str_options, "options");
    INTERN(str_compression, "compression");
    INTERN(str_compression_min_length, "compression_min_length");
    INTERN(str_set_header, "_set_header");
    INTERN(str_end, "_end");
    INTERN(str_finish_response, "finish_response");
    INTERN(str_http11, "1.1");
    INTERN(str_materialize, "_materialize");
    INTERN(str_ended, "_ended");
    INTERN(str_take_over, "_take_over");
    INTERN(str_plain_in_greenlet, "plain_in_greenlet");
    INTERN(str_request, "request");
    INTERN(str_finish_later, "_finish_later");
    INTERN(str_handler_raised, "_handler_raised");
    INTERN(str_feed, "feed");
    INTERN(str_refuse, "refuse");
    INTERN(str_upgrade, "upgrade");
    INTERN(str_stopped, "stopped");
    INTERN(str_error, "error");
    INTERN(str_upgrade_data, "upgrade_data");
    INTERN(str_dispatch, "_dispatch");
    INTERN(str_write_method, "write");
    INTERN(str_flush, "flush");
    INTERN(str_drain_queue, "_drain_queue");
    INTERN(str_remove_uploads, "_remove_uploads");
    INTERN(str_is_closing, "is_closing");
    INTERN(str_pause_reading, "pause_reading");
    INTERN(str_close_method, "close");
    INTERN(str_clock, "clock");
    INTERN(str_registry, "registry");
    INTERN(str_touch, "touch");
    INTERN(str_request_count, "request_count");
    INTERN(str_max_request, "max_request");
    INTERN(str_recycle, "recycle");
    INTERN(str_end_public, "end");
    INTERN(str_append, "append");
    if ((request_type = import_request_core()) == NULL) return NULL;
    if ((zero = PyLong_FromLong(0)) == NULL || (zero_float = PyFloat_FromDouble(0.0)) == NULL ||
        (empty_bytes_object = PyBytes_FromStringAndSize(NULL, 0)) == NULL ||
        (method_get = PyBytes_FromString("GET")) == NULL || (method_head = PyBytes_FromString("HEAD")) == NULL)
        return NULL;
    PyObject *protocol = PyImport_ImportModule("pyswoole.protocol.http");
    if (protocol == NULL) return NULL;
    http_error = PyObject_GetAttrString(protocol, "HttpError");
    Py_DECREF(protocol);
    if (http_error == NULL) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *type = PyType_FromSpec(&Core_spec);
    if (type == NULL || PyModule_AddObject(m, "ResponseCore", type) < 0) {
        Py_XDECREF(type);
        Py_DECREF(m);
        return NULL;
    }
    PyObject *conn_type = PyType_FromSpec(&Conn_spec);
    if (conn_type != NULL && (finish_response_method = PyObject_GetAttrString(conn_type, "finish_response")) == NULL)
        Py_CLEAR(conn_type);
    if (conn_type == NULL || PyModule_AddObject(m, "ConnectionCore", conn_type) < 0) {
        Py_XDECREF(conn_type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
