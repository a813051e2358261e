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

/* PyObject_TypeCheck(obj, type), remembering the last subclass of ``type`` seen in ``*memo`` (a
 * reference is held, so that its address cannot come to name another type): the per-request paths
 * check objects of one Python subclass of their C type again and again, which would otherwise
 * walk its MRO each time. */
static inline int type_check_memo(PyObject *obj, PyTypeObject *type, PyTypeObject **memo) {
    PyTypeObject *seen = Py_TYPE(obj);
    if (seen == type || seen == *memo) return 1;
    if (!PyType_IsSubtype(seen, type)) return 0;
    Py_XSETREF(*memo, (PyTypeObject *)Py_NewRef(seen));
    return 1;
}

#endif
