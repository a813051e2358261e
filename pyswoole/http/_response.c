/* The common case of pyswoole.http.response.Response in C: ``ResponseCore`` holds a response's
 * fields and does ``header()`` for an already validated name and ``end()`` for a keep-alive
 * HTTP/1.1 200 with its Content-Type (what nearly every request does; ``maybe_compress`` decides
 * on compression); every other case goes to the Python implementation (``_set_header``,
 * ``_end``), which is the reference. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

enum { FRESH = 0, STREAMING = 1, ENDED = 2 };

static PyObject *canonical;    /* dict: header name as given -> canonical name (validated) */
static PyObject *date_header;  /* DateHeader: its ``raw`` is the Server and Date lines */
static PyObject *ok_line;      /* bytes: "HTTP/1.1 200 OK\r\n" */
static PyObject *maybe_compress; /* pyswoole.http.compression.maybe_compress */
static PyObject *str_connection, *str_content_type, *str_content_length, *str_transfer_encoding;
static PyObject *str_keep_alive, *str_version, *str_method, *str_options, *str_compression;
static PyObject *str_compression_min_length, *str_raw, *str_set_header, *str_end, *str_finish_response, *str_http11;

typedef struct {
    PyObject_HEAD
    PyObject *conn;
    PyObject *request;
    PyObject *reason;
    PyObject *headers;
    int status_code;
    int state;
    char keep_alive;
    char detached;
} ResponseCore;

static int Core_init(ResponseCore *self, PyObject *args, PyObject *kwargs) {
    PyObject *conn, *request;
    if (!PyArg_UnpackTuple(args, "Response", 2, 2, &conn, &request)) return -1;
    int keep_alive = 1;
    if (request != Py_None) {
        PyObject *flag = PyObject_GetAttr(request, str_keep_alive);
        if (flag == NULL) return -1;
        keep_alive = PyObject_IsTrue(flag);
        Py_DECREF(flag);
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

/* header(key, value, format=True) */
static PyObject *Core_header(ResponseCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (self->state != FRESH) Py_RETURN_FALSE;
    if (nargs != 2 || kwnames != NULL || !PyUnicode_CheckExact(args[0]) || !PyUnicode_CheckExact(args[1]))
        return fall_back(self, str_set_header, args, nargs, kwnames);
    PyObject *key = PyDict_GetItemWithError(canonical, args[0]);
    if (key == NULL) {
        if (PyErr_Occurred()) return NULL;
        return fall_back(self, str_set_header, args, nargs, kwnames);
    }
    PyObject *value = args[1];
    if (is_special(key) || has_line_break(value))
        return fall_back(self, str_set_header, args, nargs, kwnames);
    PyObject *line = header_line(key, value);
    if (line == NULL) return NULL;
    if (self->headers == Py_None) {
        PyObject *headers = PyDict_New();
        if (headers == NULL) {
            Py_DECREF(line);
            return NULL;
        }
        Py_SETREF(self->headers, headers);
    } else if (!PyDict_CheckExact(self->headers)) {
        Py_DECREF(line);
        return fall_back(self, str_set_header, args, nargs, kwnames);
    }
    int rc = PyDict_SetItem(self->headers, key, line);
    Py_DECREF(line);
    if (rc < 0) return NULL;
    Py_RETURN_TRUE;
}

/* True if ``end()`` of this response is the common case (see the top of the file), compression
 * aside. */
static int is_plain_ok(ResponseCore *self) {
    if (self->state != FRESH || self->conn == Py_None || self->status_code != 200 || self->reason != Py_None ||
        !self->keep_alive || self->request == Py_None || !PyDict_CheckExact(self->headers))
        return 0;
    int found = PyDict_Contains(self->headers, str_content_type);
    if (found <= 0) return found;
    PyObject *version = PyObject_GetAttr(self->request, str_version);
    if (version == NULL) return -1;
    int match = version == str_http11 || (PyUnicode_Check(version) && PyUnicode_Compare(version, str_http11) == 0);
    Py_DECREF(version);
    if (!match) return 0;
    PyObject *method = PyObject_GetAttr(self->request, str_method);
    if (method == NULL) return -1;
    match = !(PyBytes_Check(method) && PyBytes_GET_SIZE(method) == 4 && memcmp(PyBytes_AS_STRING(method), "HEAD", 4) == 0);
    Py_DECREF(method);
    if (!match) return 0;
    return 1;
}

/* With ``http_compression`` on and a body of at least its minimum length, ``maybe_compress``
 * (Python) decides: *body is set to the body to send (compressed or not) and *extra to the header
 * lines to add. Return 1 when it was asked, 0 when compression is out of the question, -1 on error. */
static int compress_body(ResponseCore *self, PyObject *data, Py_ssize_t body_len, PyObject **body,
                         PyObject **extra) {
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
    PyObject *date = extra_text == NULL ? NULL : PyObject_GetAttr(date_header, str_raw);
    if (date != NULL && !PyBytes_Check(date)) {
        Py_CLEAR(date);
        PyErr_SetString(PyExc_TypeError, "DateHeader.raw must be bytes");
    }
    char length[48];
    int length_len = snprintf(length, sizeof length, "Content-Length: %zd\r\n\r\n", body_len);
    Py_ssize_t size = date == NULL ? 0 : PyBytes_GET_SIZE(ok_line) + PyBytes_GET_SIZE(date) + extra_len + length_len + body_len;
    Py_ssize_t pos = 0;
    PyObject *name, *line;
    while (date != NULL && PyDict_Next(self->headers, &pos, &name, &line)) {
        Py_ssize_t line_len;
        if (!PyUnicode_Check(line) || PyUnicode_AsUTF8AndSize(line, &line_len) == NULL) {
            Py_CLEAR(date);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "header lines must be str");
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
    while (PyDict_Next(self->headers, &pos, &name, &line)) {
        Py_ssize_t line_len;
        const char *text = PyUnicode_AsUTF8AndSize(line, &line_len);
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
    PyObject *call_args[3] = {self->conn, (PyObject *)self, payload};
    PyObject *result = PyObject_VectorcallMethod(str_finish_response, call_args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(payload);
    return result;
}

static int Core_traverse(ResponseCore *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->conn);
    Py_VISIT(self->request);
    Py_VISIT(self->reason);
    Py_VISIT(self->headers);
    return 0;
}

static int Core_clear(ResponseCore *self) {
    Py_CLEAR(self->conn);
    Py_CLEAR(self->request);
    Py_CLEAR(self->reason);
    Py_CLEAR(self->headers);
    return 0;
}

static void Core_dealloc(ResponseCore *self) {
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Core_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *names, *date, *line, *compress;
    if (!PyArg_ParseTuple(args, "O!OO!O", &PyDict_Type, &names, &date, &PyBytes_Type, &line, &compress))
        return NULL;
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
    {"headers", T_OBJECT, offsetof(ResponseCore, headers), 0, NULL},
    {"status_code", T_INT, offsetof(ResponseCore, status_code), 0, NULL},
    {"state", T_INT, offsetof(ResponseCore, state), 0, NULL},
    {"keep_alive", T_BOOL, offsetof(ResponseCore, keep_alive), 0, NULL},
    {"detached", T_BOOL, offsetof(ResponseCore, detached), 0, NULL},
    {NULL},
};

static PyType_Slot Core_slots[] = {
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

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(canonical_names, date_header, ok_line, maybe_compress): what the fast paths use."},
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
    INTERN(str_keep_alive, "keep_alive");
    INTERN(str_version, "version");
    INTERN(str_method, "method");
    INTERN(str_options, "options");
    INTERN(str_compression, "compression");
    INTERN(str_compression_min_length, "compression_min_length");
    INTERN(str_raw, "raw");
    INTERN(str_set_header, "_set_header");
    INTERN(str_end, "_end");
    INTERN(str_finish_response, "finish_response");
    INTERN(str_http11, "1.1");
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *type = PyType_FromSpec(&Core_spec);
    if (type == NULL || PyModule_AddObject(m, "ResponseCore", type) < 0) {
        Py_XDECREF(type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
