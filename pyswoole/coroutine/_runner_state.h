/* The coroutine runner's state (pyswoole.coroutine.runner._state, a RunnerState of the _step
 * module), shared by the C modules that start request handlers in place: the HTTP connection
 * (pyswoole/http/_response.c) and the ASGI entry (pyswoole/asgi/_cycle.c). */
#ifndef PYSWOOLE_RUNNER_STATE_H
#define PYSWOOLE_RUNNER_STATE_H
#include <Python.h>

typedef struct {
    PyObject_HEAD
    PyObject *current;        /* None, the pending marker or a Coroutine record */
    PyObject *pending_parent; /* parent record of the pending coroutine (None: the current task) */
} RunnerState;

/* ``runner._state`` of the runner module's ``globals`` (a new reference), checked to be a
 * RunnerState; NULL with an exception otherwise. */
static inline PyObject *runner_state_of(PyObject *globals) {
    PyObject *state = PyDict_GetItemString(globals, "_state");
    if (state == NULL || strcmp(Py_TYPE(state)->tp_name, "pyswoole.coroutine._step.RunnerState") != 0 ||
        Py_TYPE(state)->tp_basicsize != sizeof(RunnerState)) {
        PyErr_SetString(PyExc_TypeError, "runner._state must be a pyswoole.coroutine._step.RunnerState");
        return NULL;
    }
    return Py_NewRef(state);
}
#endif
