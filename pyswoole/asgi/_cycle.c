/* The common case of an ASGI ``http`` scope in C (see pyswoole/asgi/__init__.py, the reference):
 * ``http_scope`` builds the scope dict; ``CycleCore`` holds the fields of an ``HttpCycle`` and its
 * ``asgi_send``/``asgi_receive`` do the usual messages at once (``http.response.start``, a whole
 * ``http.response.body``, the first ``receive()``) and return an already completed awaitable.
 * Every other message goes to the Python methods (``send``, ``receive``), whose coroutine is
 * returned instead. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "../_heap_type.h"
#include "../coroutine/_runner_state.h"
#include "../http/_response.h"
#include "../protocol/_request.h"

static PyTypeObject *request_type; /* pyswoole.protocol._request.RequestCore */
static PyTypeObject *done_type;    /* Done */
static PyObject *done_none;        /* the Done of every call that returns None */

/* Set by configure() */
static PyTypeObject *response_type;                 /* pyswoole.http.response.Response */
static PyTypeObject *response_core_type;            /* pyswoole.http._response.ResponseCore */
static PyObject *header_cache;                      /* dict: headers tuple -> (block, has_length, close) */
static Py_ssize_t header_cache_size;
static PyObject *header_lines;                      /* _header_lines(headers) */
static PyObject *status_lines;                      /* dict: int -> status line bytes */
static PyObject *status_line;                       /* _status_line(code) */
static PyObject *date_header;                       /* DATE: its ``raw`` is the Server and Date lines */
static PyObject *scope_template;                    /* dict: every key of an http scope */
static PyObject *methods;                           /* dict: bytes -> str */
static PyObject *port_addresses;                    /* dict: port -> server address */
static PyObject *wildcard_hosts;                    /* hosts that bind every address */
static PyObject *unquote;                           /* urllib.parse.unquote */

static PyObject *str_type, *str_status, *str_headers, *str_body, *str_more_body, *str_raw, *str_send, *str_receive;
static PyObject *str_finish_response, *str_start, *str_response_body, *str_http_request, *str_http11;
static PyObject *str_port, *str_remote, *str_tls, *str_http, *str_https, *str_copy;
static PyObject *str_http_version, *str_server, *str_client, *str_scheme, *str_method, *str_path, *str_raw_path;
static PyObject *str_query_string, *str_state, *str_transport, *str_sockname, *str_get_extra_info, *str_host;
static PyObject *empty_bytes, *crlf, *close_line, *keep_alive_line;

#define RESPONSE(object) ((ResponseCore *)(object))

/* -- Done: an awaitable that is complete from the start ------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *value;
} Done;

static PyObject *done_new(PyObject *value) {
    Done *done = PyObject_New(Done, done_type);
    if (done == NULL) return NULL;
    done->value = Py_NewRef(value);
    return (PyObject *)done;
}

static void Done_dealloc(Done *self) {
    PyTypeObject *type = Py_TYPE(self);
    Py_XDECREF(self->value);
    PyObject_Free(self);
    Py_DECREF(type);
}

static PyObject *Done_await(PyObject *self) {
    return Py_NewRef(self);
}

static PySendResult Done_send(Done *self, PyObject *arg, PyObject **result) {
    *result = Py_NewRef(self->value);
    return PYGEN_RETURN;
}

static PyObject *Done_next(Done *self) {
    if (self->value != Py_None) {
        PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, self->value);
        if (stop == NULL) return NULL;
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL; /* no exception set: StopIteration(None) */
}

static PyType_Slot Done_slots[] = {
    {Py_tp_dealloc, Done_dealloc},
    {Py_am_await, Done_await},
    {Py_am_send, Done_send},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, Done_next},
    {Py_tp_doc, "An awaitable that is already complete: awaiting it gives its value at once."},
    {0, NULL},
};

static PyType_Spec Done_spec = {
    .name = "pyswoole.asgi._cycle.Done",
    .basicsize = sizeof(Done),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Done_slots,
};

/* -- CycleCore --------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *conn;
    PyObject *request;
    PyObject *response;
    PyObject *head; /* bytes or None: status line and header lines of http.response.start */
    char chunked;
    char bodyless;
    char body_sent;
} CycleCore;

static PyObject *Cycle_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *conn, *request, *response;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0) {
        PyErr_SetString(PyExc_TypeError, "HttpCycle(conn, request, response) takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "HttpCycle", 3, 3, &conn, &request, &response)) return NULL;
    CycleCore *self = (CycleCore *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->conn = Py_NewRef(conn);
    self->request = Py_NewRef(request);
    self->response = Py_NewRef(response);
    self->head = Py_NewRef(Py_None);
    return (PyObject *)self;
}

static int Cycle_traverse(CycleCore *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->conn);
    Py_VISIT(self->request);
    Py_VISIT(self->response);
    Py_VISIT(self->head);
    return 0;
}

static int Cycle_clear(CycleCore *self) {
    Py_CLEAR(self->conn);
    Py_CLEAR(self->request);
    Py_CLEAR(self->response);
    Py_CLEAR(self->head);
    return 0;
}

static void Cycle_dealloc(CycleCore *self) {
    heap_type_dealloc((PyObject *)self, (inquiry)Cycle_clear);
}

/* The fast paths need a configured module, a Response and a RequestCore. */
static int plain_fields(CycleCore *self) {
    return response_type != NULL && self->response != NULL && PyObject_TypeCheck(self->response, response_type) &&
           self->request != NULL && PyObject_TypeCheck(self->request, request_type) && self->head != NULL;
}

static PyObject *call_python(CycleCore *self, PyObject *name, PyObject *arg) {
    PyObject *args[2] = {(PyObject *)self, arg};
    return PyObject_VectorcallMethod(name, args, (arg == NULL ? 1 : 2) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static int is_str(PyObject *value, PyObject *interned) {
    return value == interned || (PyUnicode_CheckExact(value) && PyUnicode_Compare(value, interned) == 0);
}

/* message.get(key) for a dict: borrowed, NULL when absent (check PyErr_Occurred). */
static inline PyObject *get_item(PyObject *message, PyObject *key) {
    return PyDict_GetItemWithError(message, key);
}

/* The checked header lines of ``headers`` (a new reference to (block, has_length, close)), via
 * the shared cache; NULL with an exception. */
static PyObject *checked_lines(PyObject *headers) {
    PyObject *key = PyTuple_CheckExact(headers) ? Py_NewRef(headers) : PySequence_Tuple(headers);
    if (key == NULL) return NULL;
    PyObject *lines = PyDict_GetItemWithError(header_cache, key);
    int hashable = 1;
    if (lines != NULL) {
        Py_INCREF(lines);
    } else if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
            Py_DECREF(key);
            return NULL;
        }
        PyErr_Clear(); /* lists of lists */
        hashable = 0;
    }
    if (lines == NULL) {
        lines = PyObject_CallOneArg(header_lines, key);
        if (lines != NULL && hashable) {
            if (PyDict_GET_SIZE(header_cache) >= header_cache_size) PyDict_Clear(header_cache);
            if (PyDict_SetItem(header_cache, key, lines) < 0) Py_CLEAR(lines);
        }
    }
    Py_DECREF(key);
    if (lines != NULL && (!PyTuple_CheckExact(lines) || PyTuple_GET_SIZE(lines) != 3 ||
                          !PyBytes_CheckExact(PyTuple_GET_ITEM(lines, 0)))) {
        Py_DECREF(lines);
        PyErr_SetString(PyExc_TypeError, "_header_lines must return (bytes, bool, bool)");
        return NULL;
    }
    return lines;
}

/* bytes joined; a new reference. */
static PyObject *join3(PyObject *a, PyObject *b, PyObject *c) {
    Py_ssize_t la = PyBytes_GET_SIZE(a), lb = PyBytes_GET_SIZE(b), lc = c == NULL ? 0 : PyBytes_GET_SIZE(c);
    PyObject *out = PyBytes_FromStringAndSize(NULL, la + lb + lc);
    if (out == NULL) return NULL;
    char *p = PyBytes_AS_STRING(out);
    memcpy(p, PyBytes_AS_STRING(a), la);
    memcpy(p + la, PyBytes_AS_STRING(b), lb);
    if (lc) memcpy(p + la + lb, PyBytes_AS_STRING(c), lc);
    return out;
}

/* HttpCycle._start(message) for a dict message: 1 done, 0 not the common case (nothing changed),
 * -1 error (nothing changed). */
static int start(CycleCore *self, PyObject *message) {
    PyObject *status_obj = get_item(message, str_status);
    if (status_obj == NULL || !PyLong_CheckExact(status_obj)) return PyErr_Occurred() ? -1 : 0;
    int overflow;
    long status = PyLong_AsLongAndOverflow(status_obj, &overflow);
    if (overflow || status < -2147483647L || status > 2147483647L) return 0;
    PyObject *headers = get_item(message, str_headers);
    if (headers == NULL && PyErr_Occurred()) return -1;
    int has_headers = headers == NULL ? 0 : PyObject_IsTrue(headers);
    if (has_headers < 0) return -1;
    PyObject *lines = NULL;
    if (has_headers) {
        lines = checked_lines(headers);
        if (lines == NULL) { /* the reference raises the same error when awaited */
            PyErr_Clear();
            return 0;
        }
    }
    PyObject *line = PyDict_GetItemWithError(status_lines, status_obj);
    if (line != NULL) Py_INCREF(line);
    else if (!PyErr_Occurred()) line = PyObject_CallOneArg(status_line, status_obj);
    PyObject *date = line == NULL ? NULL : PyObject_GetAttr(date_header, str_raw);
    PyObject *head = NULL;
    if (date != NULL && PyBytes_Check(date) && PyBytes_Check(line))
        head = join3(line, date, lines == NULL ? NULL : PyTuple_GET_ITEM(lines, 0));
    else if (date != NULL)
        PyErr_SetString(PyExc_TypeError, "status lines and DATE.raw must be bytes");
    Py_XDECREF(line);
    Py_XDECREF(date);
    int has_length = 0, close = 0;
    if (head != NULL && lines != NULL) {
        has_length = PyObject_IsTrue(PyTuple_GET_ITEM(lines, 1));
        close = has_length < 0 ? -1 : PyObject_IsTrue(PyTuple_GET_ITEM(lines, 2));
        if (has_length < 0 || close < 0) Py_CLEAR(head);
    }
    Py_XDECREF(lines);
    if (head == NULL) return -1;
    PyObject *response = self->response;
    RESPONSE(response)->status_code = (int)status;
    if (close) RESPONSE(response)->keep_alive = 0;
    Py_SETREF(self->head, head);
    PyObject *method = ((RequestCore *)self->request)->method;
    int no_body_status = status == 204 || status == 304;
    self->bodyless = no_body_status || (PyBytes_Check(method) && PyBytes_GET_SIZE(method) == 4 &&
                                        memcmp(PyBytes_AS_STRING(method), "HEAD", 4) == 0);
    self->chunked = !has_length && status >= 200 && !no_body_status;
    return 1;
}

static int is_http11(PyObject *version) {
    return version == str_http11 || (PyUnicode_CheckExact(version) && PyUnicode_Compare(version, str_http11) == 0);
}

/* The whole body at once (the response is FRESH, its head made): 0 done, -1 error. */
static int send_whole(CycleCore *self, PyObject *body) {
    PyObject *response = self->response;
    RequestCore *request = (RequestCore *)self->request;
    RESPONSE(response)->state = ENDED;
    char length[48];
    int length_len = 0;
    if (self->chunked) length_len = snprintf(length, sizeof length, "Content-Length: %zd\r\n", PyBytes_GET_SIZE(body));
    PyObject *tail;
    if (!RESPONSE(response)->keep_alive) tail = close_line;
    else if (is_http11(request->version)) tail = crlf;
    else if (PyUnicode_CheckExact(request->version) && PyUnicode_CompareWithASCIIString(request->version, "1.0") == 0)
        tail = keep_alive_line;
    else tail = crlf;
    PyObject *head = self->head;
    Py_ssize_t head_len = PyBytes_GET_SIZE(head), tail_len = PyBytes_GET_SIZE(tail);
    Py_ssize_t body_len = self->bodyless ? 0 : PyBytes_GET_SIZE(body);
    PyObject *payload = PyBytes_FromStringAndSize(NULL, head_len + length_len + tail_len + body_len);
    if (payload == NULL) return -1;
    char *out = PyBytes_AS_STRING(payload);
    memcpy(out, PyBytes_AS_STRING(head), head_len);
    out += head_len;
    memcpy(out, length, length_len);
    out += length_len;
    memcpy(out, PyBytes_AS_STRING(tail), tail_len);
    out += tail_len;
    if (body_len) memcpy(out, PyBytes_AS_STRING(body), body_len);
    PyObject *args[3] = {self->conn, response, payload};
    PyObject *result = PyObject_VectorcallMethod(str_finish_response, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(payload);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

/* asgi_send(message): ``send`` of the ASGI application. */
static PyObject *Cycle_asgi_send(CycleCore *self, PyObject *message) {
    if (!PyDict_CheckExact(message) || !plain_fields(self)) return call_python(self, str_send, message);
    PyObject *kind = get_item(message, str_type);
    if (kind == NULL) {
        if (PyErr_Occurred()) return NULL;
        return call_python(self, str_send, message);
    }
    int state = RESPONSE(self->response)->state;
    if (is_str(kind, str_start)) {
        if (self->head != Py_None || state != FRESH) return call_python(self, str_send, message);
        int done = start(self, message);
        if (done < 0) return NULL;
        if (done == 0) return call_python(self, str_send, message);
        return Py_NewRef(done_none);
    }
    if (is_str(kind, str_response_body) && self->head != Py_None && PyBytes_CheckExact(self->head) && state == FRESH) {
        PyObject *more = get_item(message, str_more_body);
        if (more == NULL && PyErr_Occurred()) return NULL;
        PyObject *body = get_item(message, str_body);
        if (body == NULL && PyErr_Occurred()) return NULL;
        if ((more == NULL || more == Py_False) && (body == NULL || PyBytes_CheckExact(body))) {
            if (send_whole(self, body == NULL ? empty_bytes : body) < 0) return NULL;
            return Py_NewRef(done_none);
        }
    }
    return call_python(self, str_send, message);
}

/* asgi_receive(): ``receive`` of the ASGI application. */
static PyObject *Cycle_asgi_receive(CycleCore *self, PyObject *unused) {
    if (self->body_sent || self->request == NULL || !PyObject_TypeCheck(self->request, request_type))
        return call_python(self, str_receive, NULL);
    PyObject *message = PyDict_New();
    if (message == NULL) return NULL;
    if (PyDict_SetItem(message, str_type, str_http_request) < 0 ||
        PyDict_SetItem(message, str_body, ((RequestCore *)self->request)->body) < 0 ||
        PyDict_SetItem(message, str_more_body, Py_False) < 0) {
        Py_DECREF(message);
        return NULL;
    }
    self->body_sent = 1;
    PyObject *done = done_new(message);
    Py_DECREF(message);
    return done;
}

static PyMethodDef Cycle_methods[] = {
    {"asgi_send", (PyCFunction)Cycle_asgi_send, METH_O,
     "asgi_send(message): the application's send; the usual messages are handled at once."},
    {"asgi_receive", (PyCFunction)Cycle_asgi_receive, METH_NOARGS,
     "asgi_receive(): the application's receive; the request body is given at once."},
    {NULL},
};

static PyMemberDef Cycle_members[] = {
    {"conn", T_OBJECT, offsetof(CycleCore, conn), READONLY, NULL},
    {"request", T_OBJECT, offsetof(CycleCore, request), READONLY, NULL},
    {"response", T_OBJECT, offsetof(CycleCore, response), READONLY, NULL},
    {"head", T_OBJECT, offsetof(CycleCore, head), 0, "Status line and header lines, without the blank line."},
    {"chunked", T_BOOL, offsetof(CycleCore, chunked), 0, NULL},
    {"bodyless", T_BOOL, offsetof(CycleCore, bodyless), 0, "A response to HEAD, or a 204/304: the head alone is sent."},
    {"body_sent", T_BOOL, offsetof(CycleCore, body_sent), 0, NULL},
    {NULL},
};

static PyType_Slot Cycle_slots[] = {
    {Py_tp_new, Cycle_new},
    {Py_tp_dealloc, Cycle_dealloc},
    {Py_tp_traverse, Cycle_traverse},
    {Py_tp_clear, Cycle_clear},
    {Py_tp_methods, Cycle_methods},
    {Py_tp_members, Cycle_members},
    {Py_tp_doc, "The fields of an HttpCycle and its common case (see pyswoole.asgi)."},
    {0, NULL},
};

static PyType_Spec Cycle_spec = {
    .name = "pyswoole.asgi._cycle.CycleCore",
    .basicsize = sizeof(CycleCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Cycle_slots,
};

/* -- http_scope ---------------------------------------------------------------------------------- */

/* (name.lower(), value): the pair itself when its name is lower-case already. */
static PyObject *lowered_pair(PyObject *pair) {
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyBytes_CheckExact(PyTuple_GET_ITEM(pair, 0))) {
        PyObject *items = PySequence_Tuple(pair);
        if (items == NULL) return NULL;
        if (PyTuple_GET_SIZE(items) != 2) {
            Py_DECREF(items);
            PyErr_SetString(PyExc_ValueError, "request headers must be (name, value) pairs");
            return NULL;
        }
        PyObject *lower = PyObject_CallMethod(PyTuple_GET_ITEM(items, 0), "lower", NULL);
        PyObject *result = lower == NULL ? NULL : PyTuple_Pack(2, lower, PyTuple_GET_ITEM(items, 1));
        Py_XDECREF(lower);
        Py_DECREF(items);
        return result;
    }
    PyObject *name = PyTuple_GET_ITEM(pair, 0);
    const char *text = PyBytes_AS_STRING(name);
    Py_ssize_t n = PyBytes_GET_SIZE(name), i = 0;
    while (i < n && !(text[i] >= 'A' && text[i] <= 'Z')) i++;
    if (i == n) return Py_NewRef(pair);
    PyObject *lower = PyBytes_FromStringAndSize(text, n);
    if (lower == NULL) return NULL;
    char *out = PyBytes_AS_STRING(lower);
    for (; i < n; i++)
        if (out[i] >= 'A' && out[i] <= 'Z') out[i] = (char)(out[i] + 32);
    PyObject *result = PyTuple_New(2);
    if (result == NULL) {
        Py_DECREF(lower);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, lower);
    PyTuple_SET_ITEM(result, 1, Py_NewRef(PyTuple_GET_ITEM(pair, 1)));
    return result;
}

static PyObject *scope_headers(PyObject *headers) {
    PyObject *seq = PySequence_Fast(headers, "request headers must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *pair = lowered_pair(PySequence_Fast_GET_ITEM(seq, i));
        if (pair == NULL) Py_CLEAR(out);
        else PyList_SET_ITEM(out, i, pair);
    }
    Py_DECREF(seq);
    return out;
}

/* The scope's headers straight from the request's kept header lines (see _request.h), without
 * making ``request.headers``. */
static PyObject *scope_headers_raw(RequestCore *request) {
    PyObject *out = PyList_New(0);
    Py_ssize_t pos = 0;
    while (out != NULL && pos < request->raw_len) {
        uint32_t lengths[2];
        memcpy(lengths, request->raw + pos, sizeof lengths);
        const char *name = request->raw + pos + sizeof lengths;
        PyObject *lower = PyBytes_FromStringAndSize(name, (Py_ssize_t)lengths[0]);
        PyObject *value = lower == NULL ? NULL : PyBytes_FromStringAndSize(name + lengths[0], (Py_ssize_t)lengths[1]);
        PyObject *pair = value == NULL ? NULL : PyTuple_New(2);
        if (pair == NULL) {
            Py_XDECREF(lower);
            Py_XDECREF(value);
            Py_CLEAR(out);
            break;
        }
        char *text = PyBytes_AS_STRING(lower);
        for (uint32_t i = 0; i < lengths[0]; i++)
            if (text[i] >= 'A' && text[i] <= 'Z') text[i] = (char)(text[i] + 32);
        PyTuple_SET_ITEM(pair, 0, lower);
        PyTuple_SET_ITEM(pair, 1, value);
        if (PyList_Append(out, pair) < 0) Py_CLEAR(out);
        Py_DECREF(pair);
        pos += (Py_ssize_t)(sizeof lengths + lengths[0] + lengths[1]);
    }
    return out;
}

/* The server address of the connection (see _server_address): cached by port when the port is
 * bound to one address. A new reference. */
static PyObject *scope_server(PyObject *conn) {
    PyObject *port = PyObject_GetAttr(conn, str_port);
    if (port == NULL) return NULL;
    PyObject *address = PyDict_GetItemWithError(port_addresses, port);
    if (address != NULL && PyObject_IsTrue(address)) {
        Py_DECREF(port);
        return Py_NewRef(address);
    }
    PyObject *transport = PyErr_Occurred() ? NULL : PyObject_GetAttr(conn, str_transport);
    PyObject *args[2] = {transport, str_sockname};
    PyObject *sockname = transport == NULL ? NULL : PyObject_VectorcallMethod(str_get_extra_info, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_XDECREF(transport);
    if (sockname == NULL || !PyTuple_Check(sockname)) { /* a Unix socket */
        Py_DECREF(port);
        if (sockname == NULL) return NULL;
        Py_DECREF(sockname);
        Py_RETURN_NONE;
    }
    if (PyTuple_CheckExact(sockname) && PyTuple_GET_SIZE(sockname) == 2) address = sockname;
    else {
        address = PyTuple_GetSlice(sockname, 0, 2);
        Py_DECREF(sockname);
    }
    PyObject *host = address == NULL ? NULL : PyObject_GetAttr(port, str_host);
    int wildcard = host == NULL ? -1 : PySequence_Contains(wildcard_hosts, host);
    Py_XDECREF(host);
    if (wildcard < 0 || (!wildcard && PyDict_SetItem(port_addresses, port, address) < 0)) Py_CLEAR(address);
    Py_DECREF(port);
    return address;
}

static int set_new(PyObject *scope, PyObject *key, PyObject *value) {
    if (value == NULL) return -1;
    int rc = PyDict_SetItem(scope, key, value);
    Py_DECREF(value);
    return rc;
}

/* The scope of ``request`` (whose conn is set) and a copy of ``state`` (or None). */
static PyObject *build_scope(RequestCore *request, PyObject *state) {
    PyObject *conn = request->conn, *url = request->url, *method = request->method;
    if (conn == Py_None || !PyBytes_CheckExact(url) || !PyBytes_Check(method)) {
        PyErr_SetString(PyExc_TypeError, "the request has no connection, or its url or method is not bytes");
        return NULL;
    }
    PyObject *scope = PyDict_Copy(scope_template);
    if (scope == NULL) return NULL;
    const char *text = PyBytes_AS_STRING(url);
    Py_ssize_t size = PyBytes_GET_SIZE(url);
    const char *mark = memchr(text, '?', size);
    PyObject *raw_path, *query;
    if (mark == NULL) {
        raw_path = Py_NewRef(url);
        query = Py_NewRef(empty_bytes);
    } else {
        raw_path = PyBytes_FromStringAndSize(text, mark - text);
        query = PyBytes_FromStringAndSize(mark + 1, size - (mark - text) - 1);
    }
    PyObject *path = NULL;
    if (raw_path != NULL) {
        path = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(raw_path), PyBytes_GET_SIZE(raw_path), NULL);
        if (path != NULL && memchr(PyBytes_AS_STRING(raw_path), '%', PyBytes_GET_SIZE(raw_path)) != NULL)
            Py_SETREF(path, PyObject_CallOneArg(unquote, path));
    }
    PyObject *name = PyDict_GetItemWithError(methods, method);
    if (name != NULL) Py_INCREF(name);
    else if (!PyErr_Occurred()) name = PyUnicode_DecodeASCII(PyBytes_AS_STRING(method), PyBytes_GET_SIZE(method), NULL);
    PyObject *tls = PyObject_GetAttr(conn, str_tls);
    int secure = tls == NULL ? -1 : PyObject_IsTrue(tls);
    Py_XDECREF(tls);
    if (PyDict_SetItem(scope, str_http_version, request->version) < 0 ||
        set_new(scope, str_server, scope_server(conn)) < 0 ||
        set_new(scope, str_client, PyObject_GetAttr(conn, str_remote)) < 0 || secure < 0 ||
        PyDict_SetItem(scope, str_scheme, secure ? str_https : str_http) < 0 || set_new(scope, str_method, name) < 0 ||
        set_new(scope, str_path, path) < 0 || set_new(scope, str_raw_path, raw_path) < 0 ||
        set_new(scope, str_query_string, query) < 0 || set_new(scope, str_headers, request->headers == NULL ? scope_headers_raw(request) : scope_headers(request->headers)) < 0) {
        Py_DECREF(scope);
        return NULL;
    }
    if (state != Py_None) {
        PyObject *copy = PyDict_CheckExact(state) ? PyDict_Copy(state) : PyObject_CallMethodNoArgs(state, str_copy);
        if (set_new(scope, str_state, copy) < 0) {
            Py_DECREF(scope);
            return NULL;
        }
    }
    return scope;
}

/* http_scope(request, state) */
static PyObject *http_scope(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "http_scope(request, state)");
        return NULL;
    }
    if (scope_template == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pyswoole.asgi._cycle is not configured");
        return NULL;
    }
    if (!PyObject_TypeCheck(args[0], request_type)) {
        PyErr_Format(PyExc_TypeError, "expected a request, got %.100s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    return build_scope((RequestCore *)args[0], args[1]);
}


/* -- Entry: the ``request`` callback of an ASGI application ------------------------------------ */

static PyTypeObject *cycle_class;  /* pyswoole.asgi.HttpCycle */
static PyTypeObject *cycle_core_type; /* CycleCore */
static PyObject *asgi_globals;     /* pyswoole.asgi.__dict__ */
static PyObject *runner_globals;   /* pyswoole.coroutine.runner.__dict__ */
static RunnerState *runner_state;  /* pyswoole.coroutine.runner._state */
static PyObject *str_ready, *str_app, *str_call, *str_pending, *str_continue;
static PyObject *str_failed, *str_unfinished, *str_carry_on, *str_append;

typedef struct {
    PyObject_HEAD
    PyObject *handler; /* the ASGIHandler */
    PyObject *app;
    PyObject *code;    /* the code of ASGIHandler.__call__ */
    vectorcallfunc vectorcall;
} Entry;

/* A borrowed global of ``globals``; NULL with an exception when missing. */
static PyObject *global(PyObject *globals, PyObject *name) {
    PyObject *value = PyDict_GetItemWithError(globals, name);
    if (value == NULL && !PyErr_Occurred()) PyErr_Format(PyExc_RuntimeError, "%U is missing", name);
    return value;
}

/* pyswoole.asgi.<name>(args...) for its effect. */
static int call_helper(PyObject *name, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *fn = global(asgi_globals, name);
    PyObject *result = fn == NULL ? NULL : PyObject_Vectorcall(fn, args, nargs, NULL);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

/* The application returned or raised (an Exception, given) in its first step: the ends of
 * ASGIHandler.__call__ for that case. */
static int first_step_ended(CycleCore *cycle, PyObject *box, PyObject *exc) {
    PyObject *args[2] = {(PyObject *)cycle, exc};
    if (exc != NULL && call_helper(str_failed, args, 2) < 0) return -1;
    if (RESPONSE(cycle->response)->state != ENDED && call_helper(str_unfinished, args, 1) < 0) return -1;
    if (box != Py_None) {
        PyObject *handoff = PyTuple_Check(box) && PyTuple_GET_SIZE(box) == 2 ? PyTuple_GET_ITEM(box, 1) : NULL;
        PyObject *result = handoff == NULL ? NULL : PyObject_CallMethodOneArg(handoff, str_append, Py_None);
        if (result == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_step_box must be (task, list)");
            return -1;
        }
        Py_DECREF(result);
    }
    return 0;
}

/* While an application takes its first step in place: the runner's ``pending_parent`` of that
 * step (tells it from coroutines it starts itself), NULL otherwise; and the Task given to the
 * application during that step with the hand-over list it reads, (task, list), or None. */
static PyObject *step_parent, *step_box;
static PyObject *new_box; /* _new_box(): a (task, list) for the running step */

/* Run the first step of ``app`` in place: None when it is over, or the coroutine (``_carry_on``)
 * that awaits the rest. Asked for the current task meanwhile (``promote``), the application gets a
 * real one, which then runs the rest. */
static PyObject *first_step(CycleCore *cycle, PyObject *app) {
    PyObject *parent = runner_state->pending_parent;
    PyObject *outer_parent = step_parent, *outer_box = step_box; /* steps nest: keep the outer one's */
    step_parent = Py_NewRef(parent);
    step_box = Py_NewRef(Py_None);
    PyObject *yielded = NULL;
    PySendResult status = PyIter_Send(app, Py_None, &yielded);
    PyObject *box = step_box;
    Py_DECREF(step_parent);
    step_parent = outer_parent;
    step_box = outer_box;
    PyObject *result = NULL;
    if (status == PYGEN_RETURN) {
        Py_CLEAR(yielded);
        result = first_step_ended(cycle, box, NULL) < 0 ? NULL : Py_NewRef(Py_None);
    } else if (status == PYGEN_ERROR) {
        if (PyErr_ExceptionMatches(PyExc_Exception)) {
            PyObject *type, *value, *traceback;
            PyErr_Fetch(&type, &value, &traceback);
            PyErr_NormalizeException(&type, &value, &traceback);
            if (traceback != NULL) PyException_SetTraceback(value, traceback);
            Py_XDECREF(type);
            Py_XDECREF(traceback);
            result = first_step_ended(cycle, box, value) < 0 ? NULL : Py_NewRef(Py_None);
            Py_XDECREF(value);
        }
    } else { /* suspended: the rest runs in a Task (the request's, or the one given to the app) */
        PyObject *cont = global(runner_globals, str_continue);
        PyObject *args[2] = {app, yielded};
        PyObject *rest = cont == NULL ? NULL : PyObject_Vectorcall(cont, args, 2, NULL);
        Py_DECREF(yielded);
        PyObject *parked = NULL;
        if (rest != NULL && PyIter_Send(rest, Py_None, &parked) != PYGEN_NEXT) { /* park it */
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "runner._continue did not park");
            Py_CLEAR(rest);
        }
        Py_XDECREF(parked);
        PyObject *carry_on = rest == NULL ? NULL : global(asgi_globals, str_carry_on);
        PyObject *call_args[3] = {rest, (PyObject *)cycle, box};
        result = carry_on == NULL ? NULL : PyObject_Vectorcall(carry_on, call_args, 3, NULL);
        Py_XDECREF(rest);
    }
    Py_DECREF(box);
    return result;
}

/* first_step(cycle, app) */
static PyObject *first_step_function(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || cycle_core_type == NULL || !PyObject_TypeCheck(args[0], cycle_core_type) ||
        runner_globals == NULL) {
        PyErr_SetString(PyExc_TypeError, "first_step(cycle, app) of a configured module");
        return NULL;
    }
    return first_step((CycleCore *)args[0], args[1]);
}

/* promote(): see pyswoole.asgi._promote. */
static PyObject *promote(PyObject *module, PyObject *unused) {
    if (step_parent == NULL || runner_globals == NULL) Py_RETURN_NONE;
    PyObject *pending = global(runner_globals, str_pending);
    if (pending == NULL) return NULL;
    if (runner_state->current != pending || runner_state->pending_parent != step_parent) Py_RETURN_NONE;
    if (step_box == Py_None) {
        PyObject *box = PyObject_CallNoArgs(new_box);
        if (box == NULL) return NULL;
        if (!PyTuple_CheckExact(box) || PyTuple_GET_SIZE(box) != 2) {
            Py_DECREF(box);
            PyErr_SetString(PyExc_TypeError, "_new_box must return (task, list)");
            return NULL;
        }
        Py_SETREF(step_box, box);
    }
    return Py_NewRef(PyTuple_GET_ITEM(step_box, 0));
}

static PyObject *Entry_vectorcall(Entry *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    int plain = nargs == 2 && kwnames == NULL && cycle_class != NULL && PyObject_TypeCheck(args[0], request_type) &&
                PyObject_TypeCheck(args[1], response_type) && ((RequestCore *)args[0])->conn != Py_None;
    PyObject *state = NULL;
    if (plain) { /* not waiting for the lifespan startup, and stepped in place */
        PyObject *ready = PyObject_GetAttr(self->handler, str_ready);
        if (ready == NULL) return NULL;
        plain = ready == Py_None;
        Py_DECREF(ready);
        PyObject *pending = plain ? global(runner_globals, str_pending) : NULL;
        if (plain && pending == NULL) return NULL;
        plain = plain && runner_state->current == pending;
        state = plain ? PyObject_GetAttr(self->handler, str_state) : NULL;
        if (plain && state == NULL) return NULL;
    }
    if (!plain) { /* the reference: ASGIHandler.__call__ */
        PyObject *call = PyObject_GetAttr(self->handler, str_call);
        if (call == NULL) return NULL;
        PyObject *result = PyObject_Vectorcall(call, args, nargsf, kwnames);
        Py_DECREF(call);
        return result;
    }
    RequestCore *request = (RequestCore *)args[0];
    PyObject *response = args[1];
    PyObject *scope = build_scope(request, state);
    Py_DECREF(state);
    if (scope == NULL) return NULL;
    CycleCore *cycle = (CycleCore *)cycle_class->tp_alloc(cycle_class, 0);
    if (cycle == NULL) {
        Py_DECREF(scope);
        return NULL;
    }
    cycle->conn = Py_NewRef(request->conn);
    cycle->request = Py_NewRef((PyObject *)request);
    cycle->response = Py_NewRef(response);
    cycle->head = Py_NewRef(Py_None);
    PyObject *receive = PyCFunction_New(&Cycle_methods[1], (PyObject *)cycle);
    PyObject *send = receive == NULL ? NULL : PyCFunction_New(&Cycle_methods[0], (PyObject *)cycle);
    PyObject *app = NULL;
    if (send != NULL) {
        PyObject *app_args[3] = {scope, receive, send};
        app = PyObject_Vectorcall(self->app, app_args, 3, NULL);
    }
    Py_DECREF(scope);
    Py_XDECREF(receive);
    Py_XDECREF(send);
    PyObject *result = app == NULL ? NULL : first_step(cycle, app);
    Py_XDECREF(app);
    Py_DECREF(cycle);
    return result;
}

static PyObject *Entry_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *handler, *code;
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0) || !PyArg_UnpackTuple(args, "Entry", 2, 2, &handler, &code)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "Entry(handler, code) takes no keyword arguments");
        return NULL;
    }
    PyObject *app = PyObject_GetAttr(handler, str_app);
    if (app == NULL) return NULL;
    Entry *self = (Entry *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(app);
        return NULL;
    }
    self->handler = Py_NewRef(handler);
    self->app = app;
    self->code = Py_NewRef(code);
    self->vectorcall = (vectorcallfunc)Entry_vectorcall;
    return (PyObject *)self;
}

static int Entry_traverse(Entry *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->handler);
    Py_VISIT(self->app);
    Py_VISIT(self->code);
    return 0;
}

static int Entry_clear(Entry *self) {
    Py_CLEAR(self->handler);
    Py_CLEAR(self->app);
    Py_CLEAR(self->code);
    return 0;
}

static void Entry_dealloc(Entry *self) {
    heap_type_dealloc((PyObject *)self, (inquiry)Entry_clear);
}

static PyMemberDef Entry_members[] = {
    {"handler", T_OBJECT, offsetof(Entry, handler), READONLY, "The ASGIHandler."},
    {"__code__", T_OBJECT, offsetof(Entry, code), READONLY,
     "The code of ASGIHandler.__call__: a call is that coroutine function's (runner.is_async reads it)."},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Entry, vectorcall), READONLY},
    {NULL},
};

static PyType_Slot Entry_slots[] = {
    {Py_tp_new, Entry_new},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_dealloc, Entry_dealloc},
    {Py_tp_traverse, Entry_traverse},
    {Py_tp_clear, Entry_clear},
    {Py_tp_members, Entry_members},
    {Py_tp_doc,
     "Entry(handler, code): ``handler(request, response)`` (an ASGIHandler) with its common case in C: the "
     "application's first step runs in place; it returns None when that finished the request, else the "
     "coroutine of the rest."},
    {0, NULL},
};

static PyType_Spec Entry_spec = {
    .name = "pyswoole.asgi._cycle.Entry",
    .basicsize = sizeof(Entry),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = Entry_slots,
};

/* -- configuration ------------------------------------------------------------------------------ */

static PyObject *configure(PyObject *module, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"response_class", "header_cache", "header_cache_size", "header_lines", "status_lines",
                               "status_line", "date_header", "scope_template", "methods", "port_addresses",
                               "wildcard_hosts", "unquote", "cycle_class", "module_globals",
                               "runner_globals", "new_box", NULL};
    PyObject *response_cls, *cache, *lines, *statuses, *status_fn, *date, *template, *names, *ports, *address, *unquote_fn;
    PyObject *cycle_cls, *module_dict, *runner_dict, *box_maker;
    Py_ssize_t cache_size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!nOO!OOO!O!O!OOO!O!O!O", keywords, &PyType_Type, &response_cls,
                                     &PyDict_Type, &cache, &cache_size, &lines, &PyDict_Type, &statuses, &status_fn,
                                     &date, &PyDict_Type, &template, &PyDict_Type, &names, &PyDict_Type, &ports,
                                     &address, &unquote_fn, &PyType_Type, &cycle_cls, &PyDict_Type, &module_dict,
                                     &PyDict_Type, &runner_dict, &box_maker))
        return NULL;
    if (response_core_type == NULL) {
        PyObject *module = PyImport_ImportModule("pyswoole.http._response");
        PyObject *core = module == NULL ? NULL : PyObject_GetAttrString(module, "ResponseCore");
        Py_XDECREF(module);
        if (core == NULL) return NULL;
        response_core_type = (PyTypeObject *)core;
    }
    if (!PyType_Check(response_cls) || !PyType_IsSubtype((PyTypeObject *)response_cls, response_core_type)) {
        PyErr_SetString(PyExc_TypeError, "response_class must be a ResponseCore subclass");
        return NULL;
    }
    Py_XSETREF(response_type, (PyTypeObject *)Py_NewRef(response_cls));
    Py_XSETREF(header_cache, Py_NewRef(cache));
    header_cache_size = cache_size;
    Py_XSETREF(header_lines, Py_NewRef(lines));
    Py_XSETREF(status_lines, Py_NewRef(statuses));
    Py_XSETREF(status_line, Py_NewRef(status_fn));
    Py_XSETREF(date_header, Py_NewRef(date));
    Py_XSETREF(scope_template, Py_NewRef(template));
    Py_XSETREF(methods, Py_NewRef(names));
    Py_XSETREF(port_addresses, Py_NewRef(ports));
    Py_XSETREF(wildcard_hosts, Py_NewRef(address));
    Py_XSETREF(unquote, Py_NewRef(unquote_fn));
    if (!PyType_IsSubtype((PyTypeObject *)cycle_cls, cycle_core_type)) {
        PyErr_SetString(PyExc_TypeError, "cycle_class must be a subclass of CycleCore");
        return NULL;
    }
    Py_XSETREF(cycle_class, (PyTypeObject *)Py_NewRef(cycle_cls));
    Py_XSETREF(asgi_globals, Py_NewRef(module_dict));
    PyObject *state = runner_state_of(runner_dict);
    if (state == NULL) return NULL;
    Py_XSETREF(runner_state, (RunnerState *)state);
    Py_XSETREF(runner_globals, Py_NewRef(runner_dict));
    Py_XSETREF(new_box, Py_NewRef(box_maker));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(...): the Python objects the fast paths use (see pyswoole.asgi)."},
    {"http_scope", (PyCFunction)(void (*)(void))http_scope, METH_FASTCALL,
     "http_scope(request, state): the scope dict of an http request."},
    {"first_step", (PyCFunction)(void (*)(void))first_step_function, METH_FASTCALL,
     "first_step(cycle, app): run the application's first step in place; None when that ended the "
     "request, else the coroutine that awaits the rest."},
    {"promote", promote, METH_NOARGS,
     "promote(): during an application's first step in place, the real Task it gets (made once), "
     "else None."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pyswoole.asgi._cycle", "The common case of ASGI http scopes.", -1, module_methods,
};

#define INTERN(var, text)                                  \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
    return NULL

PyMODINIT_FUNC PyInit__cycle(void) {
    INTERN(str_type, "type");
    INTERN(str_status, "status");
    INTERN(str_headers, "headers");
    INTERN(str_body, "body");
    INTERN(str_more_body, "more_body");
    INTERN(str_raw, "raw");
    INTERN(str_send, "send");
    INTERN(str_receive, "receive");
    INTERN(str_finish_response, "finish_response");
    INTERN(str_start, "http.response.start");
    INTERN(str_response_body, "http.response.body");
    INTERN(str_http_request, "http.request");
    INTERN(str_http11, "1.1");
    INTERN(str_port, "port");
    INTERN(str_remote, "remote");
    INTERN(str_tls, "tls");
    INTERN(str_http, "http");
    INTERN(str_https, "https");
    INTERN(str_copy, "copy");
    INTERN(str_http_version, "http_version");
    INTERN(str_server, "server");
    INTERN(str_client, "client");
    INTERN(str_scheme, "scheme");
    INTERN(str_method, "method");
    INTERN(str_path, "path");
    INTERN(str_raw_path, "raw_path");
    INTERN(str_query_string, "query_string");
    INTERN(str_state, "state");
    INTERN(str_transport, "transport");
    INTERN(str_sockname, "sockname");
    INTERN(str_get_extra_info, "get_extra_info");
    INTERN(str_host, "host");
    INTERN(str_ready, "ready");
    INTERN(str_app, "app");
    INTERN(str_call, "__call__");
    INTERN(str_pending, "_PENDING");
    INTERN(str_continue, "_continue");
    INTERN(str_failed, "_failed");
    INTERN(str_unfinished, "_unfinished");
    INTERN(str_carry_on, "_carry_on");
    INTERN(str_append, "append");
    if ((empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL || (crlf = PyBytes_FromString("\r\n")) == NULL ||
        (close_line = PyBytes_FromString("Connection: close\r\n\r\n")) == NULL ||
        (keep_alive_line = PyBytes_FromString("Connection: keep-alive\r\n\r\n")) == NULL)
        return NULL;
    if ((request_type = import_request_core()) == NULL) return NULL;
    step_box = Py_NewRef(Py_None);
    if ((done_type = (PyTypeObject *)PyType_FromSpec(&Done_spec)) == NULL) return NULL;
    if ((done_none = done_new(Py_None)) == NULL) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *cycle_type = PyType_FromSpec(&Cycle_spec);
    PyObject *entry_type = cycle_type == NULL ? NULL : PyType_FromSpec(&Entry_spec);
    if (entry_type == NULL || PyModule_AddObject(m, "Entry", entry_type) < 0) {
        Py_XDECREF(entry_type);
        Py_XDECREF(cycle_type);
        Py_DECREF(m);
        return NULL;
    }
    cycle_core_type = (PyTypeObject *)Py_NewRef(cycle_type);
    if (PyModule_AddObject(m, "CycleCore", cycle_type) < 0 ||
        PyModule_AddObject(m, "Done", Py_NewRef(done_type)) < 0) {
        Py_XDECREF(cycle_type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
