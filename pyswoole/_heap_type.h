/* What the package's heap types with garbage-collected fields share (HTTP, ASGI, the runner). */
#ifndef PYSWOOLE_HEAP_TYPE_H
#define PYSWOOLE_HEAP_TYPE_H
#include <Python.h>

/* tp_dealloc of a heap type whose object fields ``clear`` drops: untrack, clear, free, and release
 * the reference the instance held on its type. */
static inline void heap_type_dealloc(PyObject *self, inquiry clear) {
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}

#endif
