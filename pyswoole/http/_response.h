/* The fields of pyswoole.http._response.ResponseCore, shared by the C modules that read and write
 * them: the response and connection paths (pyswoole/http/_response.c) and the ASGI cycle
 * (pyswoole/asgi/_cycle.c); and how those modules find the ``__slots__`` fields of Python classes. */
#ifndef PYSWOOLE_RESPONSE_H
#define PYSWOOLE_RESPONSE_H
#include <Python.h>
#include <structmember.h>

enum { FRESH = 0, STREAMING = 1, ENDED = 2 };

/* Header lines a response keeps in place before they need a dict (see ``headers``). */
#define FEW_HEADERS 4

typedef struct {
    PyObject_HEAD
    PyObject *conn;
    PyObject *request;
    PyObject *reason;
    PyObject *headers; /* dict: canonical name -> "Name: value\r\n"; None while ``few`` holds them */
    int status_code;
    int state;
    char keep_alive;
    char detached;
    int few_count;                      /* entries of few_names/few_lines in use (headers is None) */
    PyObject *few_names[FEW_HEADERS];   /* the first headers, in order, before a dict is made */
    PyObject *few_lines[FEW_HEADERS];
} ResponseCore;

/* The offset of the C field ``name`` (a member of ``type``, e.g. T_OBJECT_EX for a ``__slots__``
 * entry) of the instances of ``cls``, or -1 with TypeError. */
static inline Py_ssize_t member_offset(PyObject *cls, const char *name, int type) {
    PyObject *descr = PyObject_GetAttrString(cls, name);
    if (descr == NULL) return -1;
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type) && ((PyMemberDescrObject *)descr)->d_member->type == type)
        offset = ((PyMemberDescrObject *)descr)->d_member->offset;
    else
        PyErr_Format(PyExc_TypeError, "%s.%s is not a C field of the expected type", ((PyTypeObject *)cls)->tp_name,
                     name);
    Py_DECREF(descr);
    return offset;
}
#endif
