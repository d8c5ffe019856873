// A wasi:http service in JavaScript, made a component by componentize-js (StarlingMonkey,
// SpiderMonkey for WASI). It uses the fetch-event style that StarlingMonkey attaches to
// the world's wasi:http/incoming-handler export: one `fetch` listener, web Request and
// Response objects.
//
// Routes (the same as http-python):
//   GET /        200, a JSON hello that names the routes
//   GET /books   200, a fixed JSON list of books (library-api's shape)
//   POST /echo   200, the request body as it came, with its Content-Type
//   other paths  404 {"error": ...}; another method on a route: 405 with Allow

const LANGUAGE = 'javascript';

const BOOKS = [
  { id: 1, title: 'Dune', subtitle: '', author: 'Frank Herbert', isbn: '9780441013593' },
  { id: 2, title: 'The Left Hand of Darkness', subtitle: '', author: 'Ursula K. Le Guin', isbn: '9780441478125' },
  { id: 3, title: 'Neuromancer', subtitle: '', author: 'William Gibson', isbn: '9780441569595' },
];

const ROUTES = { '/': 'GET', '/books': 'GET', '/echo': 'POST' };

// The most of a body /echo takes.
const MAX_BODY = 64 * 1024;

function json(status, value, headers = {}) {
  return new Response(JSON.stringify(value) + '\n', {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

async function handle(request) {
  let path = new URL(request.url).pathname;
  if (path !== '/') path = path.replace(/\/+$/, '');
  const allowed = ROUTES[path];
  if (allowed === undefined) {
    return json(404, { error: `no route ${path}: see GET / for the routes` });
  }
  if (request.method !== allowed) {
    return json(
      405,
      { error: `method ${request.method} is not allowed on ${path}; allowed: ${allowed}` },
      { allow: allowed },
    );
  }
  if (path === '/') {
    return json(200, {
      message: `hello from a ${LANGUAGE} component`,
      language: LANGUAGE,
      routes: Object.entries(ROUTES).map(([p, m]) => `${m} ${p}`),
    });
  }
  if (path === '/books') {
    return json(200, BOOKS);
  }
  // POST /echo: a body announced too long is refused before it is read.
  const tooLong = () =>
    json(413, { error: `the request body is larger than ${MAX_BODY} bytes` });
  if (Number(request.headers.get('content-length') ?? 0) > MAX_BODY) {
    return tooLong();
  }
  const body = new Uint8Array(await request.arrayBuffer());
  if (body.length > MAX_BODY) {
    return tooLong();
  }
  return new Response(body, {
    status: 200,
    headers: { 'content-type': request.headers.get('content-type') ?? 'application/octet-stream' },
  });
}

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));
