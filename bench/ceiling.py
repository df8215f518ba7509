"""The ceiling: a bare Bottle route under waitress, with scimlite's thread count.

Whatever scimlite does per request comes on top of this; the benchmark reports
scimlite's rates as a share of this one's. Prints the port it listens on."""

import sys

import bottle
import waitress.server

app = bottle.Bottle()


@app.get('/ping')
def ping():
    """A small JSON answer, like the smallest SCIM answer."""
    bottle.response.content_type = 'application/scim+json'
    return b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0}'


if __name__ == '__main__':
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    server = waitress.server.create_server(app, host='127.0.0.1', port=0, threads=threads)
    print(f'ceiling listening on port {server.effective_port}', flush=True)
    server.run()
