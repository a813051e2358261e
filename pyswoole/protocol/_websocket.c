/* The hot path of the WebSocket codec (pyswoole/protocol/websocket.py), in C.
 *
 * FrameBase: the fields of a Frame (data, opcode, flags, fd); websocket.Frame subclasses it, so a
 * frame decoded here is made without running Python code.
 *
 * parse_frame / parse_frames: a server's decoding of "simple" frames, the usual traffic: masked,
 * FIN, text or binary, no reserved bit, within the message limit, complete in the chunk, and
 * (text) valid UTF-8. The payload is unmasked and, for text, decoded in one pass. Anything else
 * (a control frame, a fragment, a bad frame, a partial one) is left to the Python codec, which
 * also reports the errors: these functions never fail on bad input, they stop.
 *
 * pack: one unmasked (server) frame, header and payload in one allocation.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    PyObject *data;
    PyObject *opcode;
    PyObject *flags;
    PyObject *fd;
} FrameBaseObject;

static int frame_traverse(FrameBaseObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->data);
    Py_VISIT(self->opcode);
    Py_VISIT(self->flags);
    Py_VISIT(self->fd);
    return 0;
}

static int frame_clear(FrameBaseObject *self)
{
    Py_CLEAR(self->data);
    Py_CLEAR(self->opcode);
    Py_CLEAR(self->flags);
    Py_CLEAR(self->fd);
    return 0;
}

static void frame_dealloc(FrameBaseObject *self)
{
    PyObject_GC_UnTrack(self);
    frame_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef frame_members[] = {
    {"data", T_OBJECT_EX, offsetof(FrameBaseObject, data), 0, "str for text, bytes otherwise"},
    {"opcode", T_OBJECT_EX, offsetof(FrameBaseObject, opcode), 0, "OPCODE_*"},
    {"flags", T_OBJECT_EX, offsetof(FrameBaseObject, flags), 0, "FLAG_FIN, FLAG_COMPRESS"},
    {"fd", T_OBJECT_EX, offsetof(FrameBaseObject, fd), 0, "the connection's number"},
    {NULL},
};

static PyTypeObject FrameBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyswoole.protocol._websocket.FrameBase",
    .tp_doc = "The fields of a WebSocket frame (see pyswoole.protocol.websocket.Frame).",
    .tp_basicsize = sizeof(FrameBaseObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)frame_traverse,
    .tp_clear = (inquiry)frame_clear,
    .tp_dealloc = (destructor)frame_dealloc,
    .tp_members = frame_members,
};

/* The class of the frames made here: websocket.Frame, set once by set_frame_class(). */
static PyTypeObject *frame_class = NULL;
static PyObject *int_fin;     /* FLAG_FIN */
static PyObject *int_text;    /* OPCODE_TEXT */
static PyObject *int_binary;  /* OPCODE_BINARY */

static PyObject *set_frame_class(PyObject *module, PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &FrameBaseType)) {
        PyErr_SetString(PyExc_TypeError, "the frame class must subclass FrameBase");
        return NULL;
    }
    Py_INCREF(cls);
    Py_XSETREF(frame_class, (PyTypeObject *)cls);
    Py_RETURN_NONE;
}

static void unmask(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char *key)
{
    uint32_t key32;
    memcpy(&key32, key, 4);
    uint64_t key64 = ((uint64_t)key32 << 32) | key32;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, src + i, 8);
        word ^= key64;
        memcpy(dst + i, &word, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ key[i & 3];
}

/* The header of a simple frame at buf[0:len]: its total size (header, key and payload) in
 * *frame_size and the payload's offset and size, or 0 if the frame is not simple or incomplete. */
static int simple_header(const unsigned char *buf, Py_ssize_t len, Py_ssize_t limit, Py_ssize_t *start,
                         Py_ssize_t *size, Py_ssize_t *frame_size)
{
    if (limit < 0 || len < 6 || (buf[0] != 0x81 && buf[0] != 0x82) || !(buf[1] & 0x80))
        return 0;
    uint64_t length = buf[1] & 0x7F;
    Py_ssize_t header = 2;
    if (length == 126) {
        if (len < 8)
            return 0;
        length = ((uint64_t)buf[2] << 8) | buf[3];
        header = 4;
    }
    else if (length == 127) {
        if (len < 14)
            return 0;
        length = 0;
        for (int i = 2; i < 10; i++)
            length = (length << 8) | buf[i];
        header = 10;
    }
    if (length > (uint64_t)limit || (uint64_t)(len - header - 4) < length)
        return 0;
    *start = header + 4;
    *size = (Py_ssize_t)length;
    *frame_size = header + 4 + (Py_ssize_t)length;
    return 1;
}

/* Decode the simple frame whose header simple_header() read: a new Frame, Py_None (new
 * reference) if its text is not valid UTF-8, or NULL on a Python error. */
static PyObject *decode_simple(const unsigned char *buf, Py_ssize_t start, Py_ssize_t size, PyObject *fd)
{
    const unsigned char *key = buf + start - 4;
    PyObject *data;
    PyObject *opcode;
    if (buf[0] == 0x82) {
        data = PyBytes_FromStringAndSize(NULL, size);
        if (data == NULL)
            return NULL;
        unmask((unsigned char *)PyBytes_AS_STRING(data), buf + start, size, key);
        opcode = int_binary;
    }
    else {
        unsigned char small[512];
        unsigned char *plain = size <= (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc(size);
        if (plain == NULL)
            return PyErr_NoMemory();
        unmask(plain, buf + start, size, key);
        data = PyUnicode_DecodeUTF8((const char *)plain, size, NULL);
        if (plain != small)
            PyMem_Free(plain);
        if (data == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                return NULL;
            PyErr_Clear();
            Py_RETURN_NONE;  /* the Python codec reports it (close 1007) */
        }
        opcode = int_text;
    }
    FrameBaseObject *frame = (FrameBaseObject *)frame_class->tp_alloc(frame_class, 0);
    if (frame == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    frame->data = data;
    Py_INCREF(opcode);
    frame->opcode = opcode;
    Py_INCREF(int_fin);
    frame->flags = int_fin;
    Py_INCREF(fd);
    frame->fd = fd;
    return (PyObject *)frame;
}

/* A message limit: an int, saturated to PY_SSIZE_T_MAX (limits beyond it mean "none"). */
static int get_limit(PyObject *value, Py_ssize_t *limit)
{
    int overflow;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (number == -1 && PyErr_Occurred())
        return -1;
    *limit = overflow > 0 || number > PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : overflow < 0 || number < 0 ? -1 : (Py_ssize_t)number;
    return 0;
}

static int get_buffer(PyObject *data, Py_buffer *view)
{
    if (frame_class == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_frame_class() was not called");
        return -1;
    }
    return PyObject_GetBuffer(data, view, PyBUF_SIMPLE);
}

static PyObject *parse_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "parse_frame(data, fd, limit)");
        return NULL;
    }
    Py_ssize_t limit;
    if (get_limit(args[2], &limit) < 0)
        return NULL;
    if (limit < 0)
        Py_RETURN_NONE;
    Py_buffer view;
    if (get_buffer(args[0], &view) < 0)
        return NULL;
    const unsigned char *buf = view.buf;
    Py_ssize_t start, size, frame_size;
    PyObject *result;
    if (simple_header(buf, view.len, limit, &start, &size, &frame_size) && frame_size == view.len)
        result = decode_simple(buf, start, size, args[1]);
    else
        result = Py_NewRef(Py_None);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *parse_frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "parse_frames(data, pos, fd, limit)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t limit;
    if (get_limit(args[3], &limit) < 0)
        return NULL;
    Py_buffer view;
    if (get_buffer(args[0], &view) < 0)
        return NULL;
    PyObject *frames = PyList_New(0);
    if (frames == NULL)
        goto fail;
    const unsigned char *buf = view.buf;
    Py_ssize_t start, size, frame_size;
    while (pos >= 0 && pos < view.len
           && simple_header(buf + pos, view.len - pos, limit, &start, &size, &frame_size)) {
        PyObject *frame = decode_simple(buf + pos, start, size, args[2]);
        if (frame == NULL)
            goto fail;
        if (frame == Py_None) {
            Py_DECREF(frame);
            break;
        }
        int failed = PyList_Append(frames, frame);
        Py_DECREF(frame);
        if (failed)
            goto fail;
        pos += frame_size;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(Nn)", frames, pos);
fail:
    Py_XDECREF(frames);
    PyBuffer_Release(&view);
    return NULL;
}

static PyObject *pack(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "pack(data, opcode, fin=True, rsv1=False)");
        return NULL;
    }
    long opcode = PyLong_AsLong(args[1]);
    if (opcode == -1 && PyErr_Occurred())
        return NULL;
    if (opcode < 0 || opcode > 0x0F) {
        PyErr_SetString(PyExc_ValueError, "opcode must be within 0..15");
        return NULL;
    }
    int fin = nargs < 3 ? 1 : PyObject_IsTrue(args[2]);
    int rsv1 = nargs < 4 ? 0 : PyObject_IsTrue(args[3]);
    if (fin < 0 || rsv1 < 0)
        return NULL;
    const char *payload;
    Py_ssize_t size;
    Py_buffer view = {0};
    if (PyUnicode_Check(args[0])) {
        payload = PyUnicode_AsUTF8AndSize(args[0], &size);
        if (payload == NULL)
            return NULL;
    }
    else {
        if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
            return NULL;
        payload = view.buf;
        size = view.len;
    }
    Py_ssize_t header = size < 126 ? 2 : size < 0x10000 ? 4 : 10;
    PyObject *frame = PyBytes_FromStringAndSize(NULL, header + size);
    if (frame != NULL) {
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(frame);
        out[0] = (unsigned char)(opcode | (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0));
        if (header == 2) {
            out[1] = (unsigned char)size;
        }
        else if (header == 4) {
            out[1] = 126;
            out[2] = (unsigned char)(size >> 8);
            out[3] = (unsigned char)size;
        }
        else {
            out[1] = 127;
            for (int i = 0; i < 8; i++)
                out[2 + i] = (unsigned char)((uint64_t)size >> (56 - 8 * i));
        }
        memcpy(out + header, payload, size);
    }
    if (view.obj != NULL)
        PyBuffer_Release(&view);
    return frame;
}

static PyMethodDef methods[] = {
    {"set_frame_class", set_frame_class, METH_O, "The FrameBase subclass that parse_frame(s) make."},
    {"parse_frame", (PyCFunction)(void (*)(void))parse_frame, METH_FASTCALL,
     "parse_frame(data, fd, limit) -> Frame | None: data as exactly one simple frame (None: not so,"
     " or limit < 0)."},
    {"parse_frames", (PyCFunction)(void (*)(void))parse_frames, METH_FASTCALL,
     "parse_frames(data, pos, fd, limit) -> (frames, pos): the simple frames from pos on, and where"
     " they stop."},
    {"pack", (PyCFunction)(void (*)(void))pack, METH_FASTCALL,
     "pack(data, opcode, fin=True, rsv1=False) -> bytes: one unmasked frame (str is UTF-8 encoded)."},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyswoole.protocol._websocket",
    .m_doc = "The WebSocket codec's hot path: frame fields, simple-frame decoding, frame packing.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__websocket(void)
{
    if (PyType_Ready(&FrameBaseType) < 0)
        return NULL;
    int_fin = PyLong_FromLong(1);
    int_text = PyLong_FromLong(1);
    int_binary = PyLong_FromLong(2);
    if (int_fin == NULL || int_text == NULL || int_binary == NULL)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    Py_INCREF(&FrameBaseType);
    if (PyModule_AddObject(module, "FrameBase", (PyObject *)&FrameBaseType) < 0) {
        Py_DECREF(&FrameBaseType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
