import type * as http from 'node:http';

/**
 * Closes the connection of a request whose body comes too slowly (the slow-body form of
 * slowloris): over every window of `windowMs`, the body must bring at least
 * `minRate` bytes per second (and at least one byte), or the socket is destroyed.
 *
 * Only the client's slowness counts: when the server is the slow side (a chunk waiting for
 * its upload's mutex, a disk that writes slowly), received bytes sit in the request's
 * buffer, and that window is not held against the client. Large blobs take as long as
 * they take at a healthy rate; there is no deadline for a whole body.
 */
export function guardBody(req: http.IncomingMessage, windowMs: number, minRate: number, onCut: () => void): () => void {
  const tick = Math.max(5, Math.min(1000, Math.floor(windowMs / 4)));
  const needed = Math.max(1, Math.floor((minRate * windowMs) / 1000));
  const socket = req.socket;
  let windowStart = Date.now();
  let bytesAtStart = socket.bytesRead;
  let serverWasSlow = false;
  const timer = setInterval(() => {
    if (req.complete || socket.destroyed) return stop();
    // bytes waiting for us (or a paused reader) mean the server, not the client, is behind
    if (req.readableLength > 0 || req.isPaused() || socket.isPaused()) serverWasSlow = true;
    const now = Date.now();
    if (now - windowStart < windowMs) return;
    const got = socket.bytesRead - bytesAtStart;
    if (!serverWasSlow && got < needed) {
      stop();
      onCut();
      socket.destroy();
      return;
    }
    windowStart = now;
    bytesAtStart = socket.bytesRead;
    serverWasSlow = false;
  }, tick);
  timer.unref();
  const stop = (): void => clearInterval(timer);
  req.once('end', stop);
  req.once('close', stop);
  return stop;
}

/** Does this request carry a body (Content-Length above 0, or chunked)? */
export function hasBody(req: http.IncomingMessage): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}
