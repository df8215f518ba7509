"""The ceiling: a bare Bottle route under waitress, served as scimlite serves.

The same thread count and the same interpreter switch interval as scimlite
(both given by bench/run.py), waiting on sockets with poll() as scimlite does,
so whatever scimlite does per request comes on top of this; the benchmark
reports scimlite's rates as a share of this one's. Prints the port it listens on."""

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
    threads, switch_interval = int(sys.argv[1]), float(sys.argv[2])
    sys.setswitchinterval(switch_interval)
    server = waitress.server.create_server(app, host='127.0.0.1', port=0, threads=threads,
                                           asyncore_use_poll=True)
    print(f'ceiling listening on port {server.effective_port}', flush=True)
    server.run()
