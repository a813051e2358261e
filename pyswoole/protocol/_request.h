/* The fields of a parsed HTTP request (pyswoole.protocol._request.RequestCore), shared by the C
 * modules that fill and read them: the parser (pyswoole/http/_parser.c) and the connection's
 * per-read path (pyswoole/http/_response.c). Every field always holds an object. */
#ifndef PYSWOOLE_REQUEST_H
#define PYSWOOLE_REQUEST_H
#include <Python.h>

typedef struct {
    PyObject_HEAD
    PyObject *url;        /* bytes: the request target as sent */
    PyObject *headers;    /* list of (name, value) bytes pairs, trailers included; NULL until
                             asked for (made from ``raw``, see request_headers) */
    PyObject *method;     /* bytes, b"GET" */
    PyObject *version;    /* str, "1.1" */
    PyObject *keep_alive; /* bool */
    PyObject *upgrade;    /* bool: the connection switches protocols after this request */
    PyObject *body;       /* bytes */
    PyObject *conn;       /* the connection that received it, or None */
    PyObject *fd;         /* int: that connection's fd, 0 before it is known */
    PyObject *files;      /* uploads: dict of field name -> file info, or None */
    char *raw;            /* the parsed header lines not yet made objects: per line, the name and
                             value lengths (two uint32_t) then the name and value bytes */
    Py_ssize_t raw_len, raw_cap;
} RequestCore;

/* Keep one header line (as bytes, made into objects only if ``headers`` is asked for). */
static inline int request_add_header(RequestCore *request, const char *name, size_t name_len, const char *value,
                                     size_t value_len) {
    if (name_len > UINT32_MAX || value_len > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "header line too long");
        return -1;
    }
    Py_ssize_t need = request->raw_len + (Py_ssize_t)(2 * sizeof(uint32_t) + name_len + value_len);
    if (need > request->raw_cap) {
        Py_ssize_t cap = request->raw_cap ? request->raw_cap : 256;
        while (cap < need) cap *= 2;
        char *raw = PyMem_Realloc(request->raw, (size_t)cap);
        if (raw == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        request->raw = raw;
        request->raw_cap = cap;
    }
    char *out = request->raw + request->raw_len;
    uint32_t lengths[2] = {(uint32_t)name_len, (uint32_t)value_len};
    memcpy(out, lengths, sizeof lengths);
    memcpy(out + sizeof lengths, name, name_len);
    memcpy(out + sizeof lengths + name_len, value, value_len);
    request->raw_len = need;
    return 0;
}

/* The RequestCore type, imported from pyswoole.protocol._request (a new reference), or NULL. */
static inline PyTypeObject *import_request_core(void) {
    PyObject *module = PyImport_ImportModule("pyswoole.protocol._request");
    if (module == NULL) return NULL;
    PyObject *type = PyObject_GetAttrString(module, "RequestCore");
    Py_DECREF(module);
    if (type != NULL && !PyType_Check(type)) {
        Py_DECREF(type);
        PyErr_SetString(PyExc_TypeError, "pyswoole.protocol._request.RequestCore is not a type");
        return NULL;
    }
    return (PyTypeObject *)type;
}
#endif
