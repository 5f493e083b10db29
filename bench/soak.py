#!/usr/bin/env python3
"""Soak: sends batches of 20 realistic events to a running collector from several threads for
a while, and prints the collector's RSS and rollup lag every 15 s. Used by bench/soak.sh."""
import http.client, json, random, sys, threading, time, uuid

addr, pid, seconds, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
visitors = int(sys.argv[5]) if len(sys.argv) > 5 else 5000
host, port = addr.split(':')
stop = time.time() + seconds
sent = [0] * threads
retried = [0] * threads


def rss_mb():
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


def lag():
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    c.request('GET', '/api/health')
    return json.loads(c.getresponse().read())['rollup_lag_seconds']


def client(n):
    rnd = random.Random(n)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    while time.time() < stop:
        now = int(time.time() * 1000)
        events = []
        for i in range(20):
            user = f'user_{rnd.randrange(visitors)}'
            events.append({'event_id': str(uuid.uuid4()), 'event_type': rnd.choice(['page_view', 'click', 'click', 'scroll']),
                           'user_id': user, 'session_id': f'{user}_s{rnd.randrange(4)}', 'timestamp': now - i,
                           'page_url': f'https://shop.example/products/{rnd.randrange(300)}',
                           'user_agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36'})
        body = json.dumps({'events': events})
        while True:
            try:
                conn.request('POST', '/api/track/batch', body, {'content-type': 'text/plain', 'x-api-key': 'bench-write'})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    sent[n] += 20
                    break
                retried[n] += 1
            except OSError:
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                retried[n] += 1
            time.sleep(0.2)


workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
for w in workers:
    w.start()
start = time.time()
print(f'{"t s":>5} {"events sent":>12} {"RSS MB":>8} {"rollup lag s":>13}')
while any(w.is_alive() for w in workers):
    print(f'{time.time() - start:5.0f} {sum(sent):12d} {rss_mb():8.1f} {lag():13.1f}', flush=True)
    time.sleep(15)
print(f'{time.time() - start:5.0f} {sum(sent):12d} {rss_mb():8.1f} {lag():13.1f}  (load ended; {sum(retried)} retries)')
