/* One step of a coroutine without the StopIteration of ``coro.send(None)``: the runner steps every
 * server callback in place, and most finish in their first step (see runner.py). And the runner's
 * state, in C fields that the C request paths read and write without a dict lookup. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "../_heap_type.h"
#include "_runner_state.h"

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

/* -- RunnerState: which coroutine runs an eager step (runner._state) ------------------------ */

static int State_init(RunnerState *self, PyObject *args, PyObject *kwargs) {
    static char *no_arguments[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, ":RunnerState", no_arguments)) return -1;
    Py_XSETREF(self->current, Py_NewRef(Py_None));
    Py_XSETREF(self->pending_parent, Py_NewRef(Py_None));
    return 0;
}

static int State_traverse(RunnerState *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->current);
    Py_VISIT(self->pending_parent);
    return 0;
}

static int State_clear(RunnerState *self) {
    Py_CLEAR(self->current);
    Py_CLEAR(self->pending_parent);
    return 0;
}

static void State_dealloc(RunnerState *self) {
    heap_type_dealloc((PyObject *)self, (inquiry)State_clear);
}

static PyMemberDef State_members[] = {
    {"current", T_OBJECT_EX, offsetof(RunnerState, current), 0, NULL},
    {"pending_parent", T_OBJECT_EX, offsetof(RunnerState, pending_parent), 0, NULL},
    {NULL},
};

static PyType_Slot State_slots[] = {
    {Py_tp_init, State_init},
    {Py_tp_dealloc, State_dealloc},
    {Py_tp_traverse, State_traverse},
    {Py_tp_clear, State_clear},
    {Py_tp_members, State_members},
    {Py_tp_doc, "The runner's state: ``current`` (who runs an eager step) and ``pending_parent``."},
    {0, NULL},
};

static PyType_Spec State_spec = {
    .name = "pyswoole.coroutine._step.RunnerState",
    .basicsize = sizeof(RunnerState),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = State_slots,
};

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
    PyObject *state_type = PyType_FromSpec(&State_spec);
    if (state_type == NULL || PyModule_AddObject(m, "RunnerState", state_type) < 0) {
        Py_XDECREF(state_type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
