/* RequestCore: the fields of a parsed HTTP request in C (see _request.h), so that the parser
 * fills them and the connection reads them without attribute lookups; the Python classes
 * (pyswoole.protocol.http.RawRequest, pyswoole.http.request.Request) add the rest. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "../_heap_type.h"
#include "_request.h"

static PyObject *empty_bytes, *get_method, *version_11, *zero;

static PyObject *Request_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    RequestCore *self = (RequestCore *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->url = Py_NewRef(empty_bytes);
    self->method = Py_NewRef(get_method);
    self->version = Py_NewRef(version_11);
    self->keep_alive = Py_NewRef(Py_True);
    self->upgrade = Py_NewRef(Py_False);
    self->body = Py_NewRef(empty_bytes);
    self->conn = Py_NewRef(Py_None);
    self->fd = Py_NewRef(zero);
    self->files = Py_NewRef(Py_None);
    return (PyObject *)self;
}

/* ``headers``: made from the kept header lines on first use. */
static PyObject *Request_get_headers(RequestCore *self, void *closure) {
    if (self->headers != NULL) return Py_NewRef(self->headers);
    PyObject *headers = PyList_New(0);
    if (headers == NULL) return NULL;
    Py_ssize_t pos = 0;
    while (pos < self->raw_len) {
        uint32_t lengths[2];
        memcpy(lengths, self->raw + pos, sizeof lengths);
        const char *name = self->raw + pos + sizeof lengths;
        PyObject *pair = Py_BuildValue("(y#y#)", name, (Py_ssize_t)lengths[0], name + lengths[0],
                                       (Py_ssize_t)lengths[1]);
        if (pair == NULL || PyList_Append(headers, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(headers);
            return NULL;
        }
        Py_DECREF(pair);
        pos += (Py_ssize_t)(sizeof lengths + lengths[0] + lengths[1]);
    }
    PyMem_Free(self->raw);
    self->raw = NULL;
    self->raw_len = self->raw_cap = 0;
    self->headers = headers;
    return Py_NewRef(headers);
}

static int Request_set_headers(RequestCore *self, PyObject *value, void *closure) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "headers cannot be deleted");
        return -1;
    }
    Py_XSETREF(self->headers, Py_NewRef(value));
    PyMem_Free(self->raw);
    self->raw = NULL;
    self->raw_len = self->raw_cap = 0;
    return 0;
}

static int Request_traverse(RequestCore *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->url);
    Py_VISIT(self->headers);
    Py_VISIT(self->method);
    Py_VISIT(self->version);
    Py_VISIT(self->keep_alive);
    Py_VISIT(self->upgrade);
    Py_VISIT(self->body);
    Py_VISIT(self->conn);
    Py_VISIT(self->fd);
    Py_VISIT(self->files);
    return 0;
}

static int Request_clear(RequestCore *self) {
    Py_CLEAR(self->url);
    Py_CLEAR(self->headers);
    Py_CLEAR(self->method);
    Py_CLEAR(self->version);
    Py_CLEAR(self->keep_alive);
    Py_CLEAR(self->upgrade);
    Py_CLEAR(self->body);
    Py_CLEAR(self->conn);
    Py_CLEAR(self->fd);
    Py_CLEAR(self->files);
    return 0;
}

static void Request_dealloc(RequestCore *self) {
    PyMem_Free(self->raw);
    heap_type_dealloc((PyObject *)self, (inquiry)Request_clear);
}

#define FIELD(name, doc) {#name, T_OBJECT_EX, offsetof(RequestCore, name), 0, doc}
static PyMemberDef Request_members[] = {
    FIELD(url, "The request target as sent (bytes)."),
    FIELD(method, "The method (bytes)."),
    FIELD(version, "The HTTP version: \"1.1\" or \"1.0\"."),
    FIELD(keep_alive, "False when the connection closes after this request."),
    FIELD(upgrade, "True when the connection switches protocols after this request."),
    FIELD(body, "The body (bytes; empty for uploads that went to files)."),
    FIELD(conn, "The connection that received the request, or None."),
    FIELD(fd, "That connection's fd (0 before it is known)."),
    FIELD(files, "Uploaded files by field name, or None."),
    {NULL},
};

static PyGetSetDef Request_getset[] = {
    {"headers", (getter)Request_get_headers, (setter)Request_set_headers,
     "The header (and trailer) lines: a list of (name, value) bytes pairs, made on first use.", NULL},
    {NULL},
};

static PyType_Slot Request_slots[] = {
    {Py_tp_getset, Request_getset},
    {Py_tp_new, Request_new},
    {Py_tp_dealloc, Request_dealloc},
    {Py_tp_traverse, Request_traverse},
    {Py_tp_clear, Request_clear},
    {Py_tp_members, Request_members},
    {Py_tp_doc, "The fields of a parsed HTTP request (see pyswoole.protocol.http.RawRequest)."},
    {0, NULL},
};

static PyType_Spec Request_spec = {
    .name = "pyswoole.protocol._request.RequestCore",
    .basicsize = sizeof(RequestCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Request_slots,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pyswoole.protocol._request", "The fields of a parsed HTTP request.", -1, NULL,
};

PyMODINIT_FUNC PyInit__request(void) {
    if ((empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL || (get_method = PyBytes_FromString("GET")) == NULL ||
        (version_11 = PyUnicode_InternFromString("1.1")) == NULL || (zero = PyLong_FromLong(0)) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *type = PyType_FromSpec(&Request_spec);
    if (type == NULL || PyModule_AddObject(m, "RequestCore", type) < 0) {
        Py_XDECREF(type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
