/* The fields of a parsed HTTP request (pyswoole.protocol._request.RequestCore), shared by the C
 * modules that fill and read them: the parser (pyswoole/http/_parser.c) and the connection's
 * per-read path (pyswoole/http/_response.c). Every field always holds an object. */
#ifndef PYSWOOLE_REQUEST_H
#define PYSWOOLE_REQUEST_H
#include <Python.h>

typedef struct {
    PyObject_HEAD
    PyObject *url;        /* bytes: the request target as sent */
    PyObject *headers;    /* list of (name, value) bytes pairs, trailers included; () when none */
    PyObject *method;     /* bytes, b"GET" */
    PyObject *version;    /* str, "1.1" */
    PyObject *keep_alive; /* bool */
    PyObject *upgrade;    /* bool: the connection switches protocols after this request */
    PyObject *body;       /* bytes */
    PyObject *conn;       /* the connection that received it, or None */
    PyObject *fd;         /* int: that connection's fd, 0 before it is known */
    PyObject *files;      /* uploads: dict of field name -> file info, or None */
} RequestCore;

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
