/* One step of a coroutine without the StopIteration of ``coro.send(None)``: the runner steps every
 * server callback in place, and most finish in their first step (see runner.py). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *finished; /* returned by step() when the coroutine has returned */

static PyObject *step(PyObject *module, PyObject *coro) {
    PyObject *result;
    PySendResult status = PyIter_Send(coro, Py_None, &result);
    if (status == PYGEN_ERROR) return NULL;
    if (status == PYGEN_RETURN) {
        Py_DECREF(result);
        return Py_NewRef(finished);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"step", step, METH_O,
     "step(coro): coro.send(None); FINISHED instead of StopIteration when it returns (its value is "
     "dropped)."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pyswoole.coroutine._step", "One step of a coroutine.", -1, methods,
};

PyMODINIT_FUNC PyInit__step(void) {
    finished = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    if (finished == NULL) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObject(m, "FINISHED", Py_NewRef(finished)) < 0) {
        Py_DECREF(finished);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
