/* The HTTP/1.1 request parser of pyswoole.http.parser: llhttp (vendor/llhttp, the parser httptools
 * wraps, with the same settings: no leniency) driven from C, so that a request costs no Python call
 * until it is complete. See pyswoole/http/parser.py for the contract. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "../_heap_type.h"
#include "llhttp.h"
#include "../protocol/_request.h"

static PyObject *HttpError;   /* pyswoole.protocol.http.HttpError */
static PyTypeObject *request_type; /* pyswoole.protocol._request.RequestCore */
static PyTypeObject *request_subclass; /* memo of type_check_memo */
static PyObject *str_write, *str_close, *str_abort;
static PyObject *version_10, *empty_bytes, *empty_tuple;
static PyObject *method_names[64]; /* llhttp method -> bytes, made on first use */

/* A span that may arrive in pieces (URL, header name, header value). Its bytes are those of the
 * data being parsed while it comes in one piece (``data`` points there: no copy, and no buffer of
 * the parser's to touch), and are copied to the parser's growable buffer ``buf`` when a second
 * piece arrives or the feed ends with the span unfinished (span_keep). */
typedef struct {
    const char *data;
    size_t len;
    char *buf;
    size_t cap;
} Span;

typedef struct {
    PyObject_HEAD
    llhttp_t parser;
    PyTypeObject *factory; /* a RequestCore subtype */
    PyObject *on_head;
    Py_ssize_t max_header_size;
    Py_ssize_t max_body_size;
    PyObject *messages;     /* list: requests completed during this feed */
    RequestCore *current;   /* the request being parsed, or NULL */
    PyObject *sink;         /* its body sink, or NULL */
    PyObject *chunks;       /* its body pieces (list), or NULL */
    PyObject *failure;      /* exception raised by a callback during this feed, or NULL */
    PyObject *error;        /* the HttpError that stopped the parser, or None */
    PyObject *upgrade_data; /* bytes after an upgrading request, or None */
    int closed;
    int stopped;
    Py_ssize_t head_size;
    Py_ssize_t body_size;
    Span url, field, value;
} Parser;

static llhttp_settings_t settings;

#define PARSER(p) ((Parser *)(p)->data)

/* Room for ``size`` bytes in the span's buffer, its bytes moved there. */
static int span_own(Span *span, size_t size) {
    if (size > span->cap) {
        size_t cap = span->cap ? span->cap : 64;
        while (cap < size) cap *= 2;
        char *buf = PyMem_Realloc(span->buf, cap);
        if (buf == NULL) return -1;
        if (span->data == span->buf) span->data = buf;
        span->buf = buf;
        span->cap = cap;
    }
    if (span->data != span->buf) {
        memcpy(span->buf, span->data, span->len);
        span->data = span->buf;
    }
    return 0;
}

static int span_add(Span *span, const char *at, size_t length) {
    if (span->len == 0) { /* the first piece: kept where it is */
        span->data = at;
        span->len = length;
        return 0;
    }
    if (span_own(span, span->len + length) < 0) return -1;
    memcpy(span->buf + span->len, at, length);
    span->len += length;
    return 0;
}

/* The feed ends: an unfinished span's bytes go to its buffer (the data parsed goes away). */
static int span_keep(Span *span) {
    return span->len == 0 || span->data == span->buf ? 0 : span_own(span, span->len);
}

static void span_free(Span *span) {
    PyMem_Free(span->buf);
    span->data = span->buf = NULL;
    span->len = span->cap = 0;
}

/* Remember the Python exception raised in a callback; llhttp stops with a callback error. */
static int fail_from_python(Parser *self) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL) PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    if (self->failure == NULL) self->failure = value;
    else Py_XDECREF(value);
    return -1;
}

static int fail_with(Parser *self, int status, const char *reason) {
    PyObject *exc = PyObject_CallFunction(HttpError, "is", status, reason);
    if (exc == NULL) return fail_from_python(self);
    if (self->failure == NULL) self->failure = exc;
    else Py_DECREF(exc);
    return -1;
}

static int check_head(Parser *self, const char *reason) {
    Py_ssize_t size = self->head_size + (Py_ssize_t)(self->url.len + self->field.len + self->value.len);
    if (size > self->max_header_size) return fail_with(self, 431, reason);
    return 0;
}

/* -- llhttp callbacks ------------------------------------------------------------------------- */
static int on_message_begin(llhttp_t *p) {
    Parser *self = PARSER(p);
    PyObject *made = self->factory->tp_new(self->factory, empty_tuple, NULL);
    if (made == NULL) return fail_from_python(self);
    if (!type_check_memo(made, request_type, &request_subclass)) {
        Py_DECREF(made);
        PyErr_SetString(PyExc_TypeError, "the request factory made something that is not a request");
        return fail_from_python(self);
    }
    Py_XSETREF(self->current, (RequestCore *)made);
    self->head_size = 0;
    self->url.len = self->field.len = self->value.len = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t length) {
    Parser *self = PARSER(p);
    if (span_add(&self->url, at, length) < 0) return fail_with(self, 500, "out of memory");
    return check_head(self, "request line too long");
}

static int on_url_complete(llhttp_t *p) {
    Parser *self = PARSER(p);
    PyObject *url = PyBytes_FromStringAndSize(self->url.data, (Py_ssize_t)self->url.len);
    if (url == NULL) return fail_from_python(self);
    self->head_size += (Py_ssize_t)self->url.len;
    self->url.len = 0;
    Py_SETREF(self->current->url, url);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t length) {
    Parser *self = PARSER(p);
    if (span_add(&self->field, at, length) < 0) return fail_with(self, 500, "out of memory");
    return check_head(self, "header section too large");
}

static int on_header_value(llhttp_t *p, const char *at, size_t length) {
    Parser *self = PARSER(p);
    if (span_add(&self->value, at, length) < 0) return fail_with(self, 500, "out of memory");
    return check_head(self, "header section too large");
}

static int on_header_value_complete(llhttp_t *p) {
    Parser *self = PARSER(p);
    self->head_size += 4; /* ": " and CRLF */
    if (check_head(self, "header section too large")) return -1;
    RequestCore *request = self->current;
    int rc;
    if (request->headers == NULL) { /* kept as bytes until asked for */
        rc = request_add_header(request, self->field.data, self->field.len, self->value.data, self->value.len);
    } else { /* a trailer after the headers were made objects (read while the body arrived) */
        PyObject *pair = Py_BuildValue("(y#y#)", self->field.data, (Py_ssize_t)self->field.len, self->value.data,
                                       (Py_ssize_t)self->value.len);
        rc = pair == NULL || !PyList_Check(request->headers) ? -1 : PyList_Append(request->headers, pair);
        if (pair != NULL && !PyList_Check(request->headers))
            PyErr_SetString(PyExc_TypeError, "request headers must be a list");
        Py_XDECREF(pair);
    }
    if (rc < 0) return fail_from_python(self);
    self->head_size += (Py_ssize_t)(self->field.len + self->value.len);
    self->field.len = self->value.len = 0;
    return 0;
}

static PyObject *method_name(uint8_t method) {
    if (method >= 64) return PyBytes_FromString(llhttp_method_name((llhttp_method_t)method));
    if (method_names[method] == NULL) {
        method_names[method] = PyBytes_FromString(llhttp_method_name((llhttp_method_t)method));
        if (method_names[method] == NULL) return NULL;
    }
    return Py_NewRef(method_names[method]);
}

static int on_headers_complete(llhttp_t *p) {
    Parser *self = PARSER(p);
    RequestCore *request = self->current;
    /* A new request says GET, 1.1 and keep-alive: set only what differs. */
    if (p->method != HTTP_GET) {
        PyObject *method = method_name(p->method);
        if (method == NULL) return fail_from_python(self);
        Py_SETREF(request->method, method);
    }
    if (p->http_major != 1 || p->http_minor != 1) {
        PyObject *version = (p->http_major == 1 && p->http_minor == 0)
                                ? Py_NewRef(version_10)
                                : PyUnicode_FromFormat("%d.%d", p->http_major, p->http_minor);
        if (version == NULL) return fail_from_python(self);
        Py_SETREF(request->version, version);
    }
    if (!llhttp_should_keep_alive(p)) Py_SETREF(request->keep_alive, Py_NewRef(Py_False));
    if (p->method != HTTP_GET && p->method != HTTP_HEAD && self->on_head != Py_None) {
        PyObject *sink = PyObject_CallOneArg(self->on_head, (PyObject *)request);
        if (sink == NULL) return fail_from_python(self);
        if (sink == Py_None) Py_DECREF(sink);
        else Py_XSETREF(self->sink, sink);
    }
    return p->upgrade ? 1 : 0; /* an upgrade has no body here: what follows is the new protocol */
}

static int on_body(llhttp_t *p, const char *at, size_t length) {
    Parser *self = PARSER(p);
    self->body_size += (Py_ssize_t)length;
    if (self->body_size > self->max_body_size) {
        char reason[64];
        snprintf(reason, sizeof reason, "body larger than %zd bytes", self->max_body_size);
        return fail_with(self, 413, reason);
    }
    PyObject *piece = PyBytes_FromStringAndSize(at, (Py_ssize_t)length);
    if (piece == NULL) return fail_from_python(self);
    if (self->sink != NULL) {
        PyObject *result = PyObject_CallMethodOneArg(self->sink, str_write, piece);
        Py_DECREF(piece);
        if (result == NULL) return fail_from_python(self);
        Py_DECREF(result);
        return 0;
    }
    if (self->chunks == NULL) {
        self->chunks = PyList_New(0);
        if (self->chunks == NULL) {
            Py_DECREF(piece);
            return fail_from_python(self);
        }
    }
    int rc = PyList_Append(self->chunks, piece);
    Py_DECREF(piece);
    return rc < 0 ? fail_from_python(self) : 0;
}

static int on_message_complete(llhttp_t *p) {
    Parser *self = PARSER(p);
    RequestCore *request = self->current;
    self->current = NULL;
    self->body_size = 0;
    int rc = 0;
    if (self->sink != NULL) {
        PyObject *sink = self->sink;
        self->sink = NULL;
        PyObject *result = PyObject_CallMethodNoArgs(sink, str_close);
        Py_DECREF(sink);
        if (result == NULL) rc = -1;
        else Py_DECREF(result);
    } else if (self->chunks != NULL) {
        PyObject *chunks = self->chunks;
        self->chunks = NULL;
        PyObject *body = PyList_GET_SIZE(chunks) == 1 ? Py_NewRef(PyList_GET_ITEM(chunks, 0))
                                                       : _PyBytes_Join(empty_bytes, chunks);
        Py_DECREF(chunks);
        if (body == NULL) rc = -1;
        else Py_SETREF(request->body, body);
    }
    if (rc == 0) rc = PyList_Append(self->messages, (PyObject *)request);
    Py_DECREF(request);
    return rc < 0 ? fail_from_python(self) : 0;
}

/* -- the Python type ---------------------------------------------------------------------------- */
static void discard_sink(Parser *self) {
    if (self->sink == NULL) return;
    PyObject *sink = self->sink;
    self->sink = NULL;
    PyObject *result = PyObject_CallMethodNoArgs(sink, str_abort);
    Py_DECREF(sink);
    if (result == NULL) PyErr_WriteUnraisable(NULL);
    else Py_DECREF(result);
}

static void stop_with(Parser *self, PyObject *error) {
    Py_SETREF(self->error, error);
    self->stopped = 1;
    Py_CLEAR(self->current);
    Py_CLEAR(self->chunks);
    discard_sink(self);
}

static int Parser_init(Parser *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"factory", "max_header_size", "max_body_size", "on_head", NULL};
    PyObject *factory, *on_head = Py_None;
    Py_ssize_t max_header_size, max_body_size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Onn|O", keywords, &factory, &max_header_size,
                                     &max_body_size, &on_head))
        return -1;
    if (!PyType_Check(factory) || !PyType_IsSubtype((PyTypeObject *)factory, request_type)) {
        PyErr_SetString(PyExc_TypeError, "the request factory must be a subclass of RawRequest");
        return -1;
    }
    Py_XSETREF(self->factory, (PyTypeObject *)Py_NewRef(factory));
    Py_XSETREF(self->on_head, Py_NewRef(on_head));
    self->max_header_size = max_header_size;
    self->max_body_size = max_body_size;
    if (self->error == NULL) self->error = Py_NewRef(Py_None);
    if (self->upgrade_data == NULL) self->upgrade_data = Py_NewRef(Py_None);
    llhttp_init(&self->parser, HTTP_REQUEST, &settings);
    self->parser.data = self;
    return 0;
}

/* Parse ``data``, appending the requests it completes to the list ``messages``: 0, or -1 with an
 * exception (the HttpError that stopped the parser, once no request before it is left). */
static int feed_into(Parser *self, PyObject *data, PyObject *messages) {
    if (self->stopped) {
        if (self->error != Py_None) {
            PyErr_SetObject((PyObject *)Py_TYPE(self->error), self->error);
            return -1;
        }
        if (self->upgrade_data != Py_None) {
            PyObject *joined = PyNumber_Add(self->upgrade_data, data);
            if (joined == NULL) return -1;
            Py_SETREF(self->upgrade_data, joined);
        }
        return 0;
    }
    Py_buffer view;
    const char *buf;
    Py_ssize_t len;
    int has_view = !PyBytes_CheckExact(data); /* bytes (what transports give) are read in place */
    if (has_view) {
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return -1;
        buf = view.buf;
        len = view.len;
    } else {
        buf = PyBytes_AS_STRING(data);
        len = PyBytes_GET_SIZE(data);
    }
    Py_ssize_t before = PyList_GET_SIZE(messages);
    self->messages = messages;
    Py_INCREF(self); /* callbacks may drop the last other reference */
    llhttp_errno_t err = llhttp_execute(&self->parser, buf, (size_t)len);
    self->messages = NULL;
    int rc = 0;
    Py_ssize_t count = PyList_GET_SIZE(messages) - before; /* requests completed by this feed */
    PyObject *last = count > 0 ? PyList_GET_ITEM(messages, PyList_GET_SIZE(messages) - 1) : NULL;
    if (err == HPE_PAUSED_UPGRADE && self->parser.upgrade == 1) {
        Py_ssize_t offset = llhttp_get_error_pos(&self->parser) - buf;
        llhttp_resume_after_upgrade(&self->parser);
        PyObject *rest = PyBytes_FromStringAndSize(buf + offset, len - offset);
        if (rest == NULL) rc = -1;
        else Py_SETREF(self->upgrade_data, rest);
        self->stopped = 1;
        if (rc == 0 && last != NULL) Py_SETREF(((RequestCore *)last)->upgrade, Py_NewRef(Py_True));
    } else if (err != HPE_OK) {
        PyObject *failure = self->failure;
        self->failure = NULL;
        PyObject *error;
        if (failure != NULL && PyObject_TypeCheck(failure, (PyTypeObject *)HttpError)) {
            error = failure;
        } else if (failure != NULL) {
            PyObject *reason = PyUnicode_FromFormat("parser callback failed: %R", failure);
            error = reason == NULL ? NULL : PyObject_CallFunction(HttpError, "iO", 500, reason);
            Py_XDECREF(reason);
            Py_DECREF(failure);
        } else {
            int keep_alive = last == NULL || ((RequestCore *)last)->keep_alive != Py_False;
            if (last != NULL && !keep_alive && self->current == NULL) {
                self->closed = self->stopped = 1; /* more sent after a request that ends the connection */
                error = NULL;
            } else {
                const char *reason = llhttp_get_error_reason(&self->parser);
                if (reason == NULL || !*reason) reason = llhttp_errno_name(err);
                error = PyObject_CallFunction(HttpError, "is", 400, reason);
            }
        }
        if (error != NULL) stop_with(self, error);
        else if (PyErr_Occurred()) rc = -1;
    }
    if (span_keep(&self->url) < 0 || span_keep(&self->field) < 0 || span_keep(&self->value) < 0) {
        self->url.len = self->field.len = self->value.len = 0; /* nothing may point into the data */
        if (rc == 0) PyErr_NoMemory();
        rc = -1;
    }
    if (has_view) PyBuffer_Release(&view);
    Py_DECREF(self);
    if (rc < 0) return -1;
    if (count == 0 && self->error != Py_None) {
        PyErr_SetObject((PyObject *)Py_TYPE(self->error), self->error);
        return -1;
    }
    return 0;
}

static PyObject *Parser_feed(Parser *self, PyObject *data) {
    PyObject *messages = PyList_New(0);
    if (messages == NULL) return NULL;
    if (feed_into(self, data, messages) < 0) {
        Py_DECREF(messages);
        return NULL;
    }
    return messages;
}

/* feed_into(data, requests) */
static PyObject *Parser_feed_into(Parser *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "feed_into(data, requests) needs bytes and a list");
        return NULL;
    }
    if (feed_into(self, args[0], args[1]) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Parser_discard(Parser *self, PyObject *unused) {
    discard_sink(self);
    Py_RETURN_NONE;
}

static PyObject *Parser_in_message(Parser *self, void *closure) {
    return PyBool_FromLong(self->current != NULL);
}

static int Parser_traverse(Parser *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->factory);
    Py_VISIT(self->on_head);
    Py_VISIT(self->current);
    Py_VISIT(self->sink);
    Py_VISIT(self->chunks);
    Py_VISIT(self->failure);
    Py_VISIT(self->error);
    Py_VISIT(self->upgrade_data);
    return 0;
}

static int Parser_clear(Parser *self) {
    Py_CLEAR(self->factory);
    Py_CLEAR(self->on_head);
    Py_CLEAR(self->current);
    Py_CLEAR(self->sink);
    Py_CLEAR(self->chunks);
    Py_CLEAR(self->failure);
    Py_CLEAR(self->error);
    Py_CLEAR(self->upgrade_data);
    return 0;
}

static void Parser_dealloc(Parser *self) {
    span_free(&self->url);
    span_free(&self->field);
    span_free(&self->value);
    heap_type_dealloc((PyObject *)self, (inquiry)Parser_clear);
}

static PyMethodDef Parser_methods[] = {
    {"feed", (PyCFunction)Parser_feed, METH_O,
     "Parse bytes; return the requests they completed (see pyswoole.http.parser)."},
    {"feed_into", (PyCFunction)(void (*)(void))Parser_feed_into, METH_FASTCALL,
     "feed_into(data, requests): feed(data), the requests appended to the list ``requests``."},
    {"discard", (PyCFunction)Parser_discard, METH_NOARGS,
     "Abort the body sink of a request that will not complete."},
    {NULL},
};

static PyMemberDef Parser_members[] = {
    {"factory", T_OBJECT, offsetof(Parser, factory), READONLY, NULL},
    {"on_head", T_OBJECT, offsetof(Parser, on_head), READONLY, NULL},
    {"max_header_size", T_PYSSIZET, offsetof(Parser, max_header_size), 0, NULL},
    {"max_body_size", T_PYSSIZET, offsetof(Parser, max_body_size), 0, NULL},
    {"error", T_OBJECT, offsetof(Parser, error), READONLY, NULL},
    {"upgrade_data", T_OBJECT, offsetof(Parser, upgrade_data), READONLY, NULL},
    {"closed", T_BOOL, offsetof(Parser, closed), READONLY, NULL},
    {"stopped", T_BOOL, offsetof(Parser, stopped), READONLY, NULL},
    {NULL},
};

static PyGetSetDef Parser_getset[] = {
    {"in_message", (getter)Parser_in_message, NULL, "True between the first byte of a request and its end.",
     NULL},
    {NULL},
};

static PyType_Slot Parser_slots[] = {
    {Py_tp_init, Parser_init},
    {Py_tp_dealloc, Parser_dealloc},
    {Py_tp_traverse, Parser_traverse},
    {Py_tp_clear, Parser_clear},
    {Py_tp_methods, Parser_methods},
    {Py_tp_members, Parser_members},
    {Py_tp_getset, Parser_getset},
    {Py_tp_doc, "llhttp request parser (the engine of pyswoole.http.parser.RequestParser)."},
    {0, NULL},
};

static PyType_Spec Parser_spec = {
    .name = "pyswoole.http._parser.Parser",
    .basicsize = sizeof(Parser),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Parser_slots,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pyswoole.http._parser", "llhttp request parser.", -1, NULL,
};

#define INTERN(var, text)                                  \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
    return NULL

PyMODINIT_FUNC PyInit__parser(void) {
    PyObject *protocol = PyImport_ImportModule("pyswoole.protocol.http");
    if (protocol == NULL) return NULL;
    HttpError = PyObject_GetAttrString(protocol, "HttpError");
    Py_DECREF(protocol);
    if (HttpError == NULL) return NULL;
    if ((request_type = import_request_core()) == NULL) return NULL;
    if ((empty_tuple = PyTuple_New(0)) == NULL) return NULL;
    INTERN(str_write, "write");
    INTERN(str_close, "close");
    INTERN(str_abort, "abort");
    if ((empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL) return NULL;
    INTERN(version_10, "1.0");
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_url_complete = on_url_complete;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_header_value_complete = on_header_value_complete;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *type = PyType_FromSpec(&Parser_spec);
    if (type == NULL || PyModule_AddObject(m, "Parser", type) < 0) {
        Py_XDECREF(type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
