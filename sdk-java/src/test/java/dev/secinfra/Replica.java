package dev.secinfra;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A stand-in replica for failover tests: a TCP forwarder on a free loopback port that relays
 * every byte to the real reference server, so TLS, certificates and answers are the server's own.
 * It can be stopped (its listener and every connection closed, as when a replica dies mid-call)
 * and can refuse (accept, then close at once: the handshake fails before a request is sent).
 */
final class Replica implements AutoCloseable {
  private final ServerSocket listener;
  private final int target;
  private final List<Socket> sockets = new ArrayList<>();
  private final AtomicInteger connections = new AtomicInteger();
  private volatile boolean refusing;
  private final Thread acceptor;

  Replica(int targetPort) throws IOException {
    this.target = targetPort;
    this.listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    this.acceptor = new Thread(this::accept, "replica-" + listener.getLocalPort());
    acceptor.setDaemon(true);
    acceptor.start();
  }

  String url() {
    return "https://127.0.0.1:" + listener.getLocalPort();
  }

  /** Connections accepted so far. */
  int connections() {
    return connections.get();
  }

  void refusing(boolean value) {
    refusing = value;
  }

  /** Closes every connection held (calls in flight through it fail), and keeps listening. */
  void dropConnections() {
    List<Socket> held;
    synchronized (sockets) {
      held = new ArrayList<>(sockets);
      sockets.clear();
    }
    for (Socket s : held) {
      try {
        s.close();
      } catch (IOException e) {
        // already closed
      }
    }
  }

  private void accept() {
    while (!listener.isClosed()) {
      Socket client;
      try {
        client = listener.accept();
      } catch (IOException e) {
        return;
      }
      connections.incrementAndGet();
      if (refusing) {
        try {
          client.close();
        } catch (IOException e) {
          // nothing to do
        }
        continue;
      }
      try {
        Socket server = new Socket();
        server.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), target), 5000);
        synchronized (sockets) {
          sockets.add(client);
          sockets.add(server);
        }
        pump(client, server);
        pump(server, client);
      } catch (IOException e) {
        try {
          client.close();
        } catch (IOException ignored) {
          // nothing to do
        }
      }
    }
  }

  private static void pump(Socket from, Socket to) {
    Thread thread =
        new Thread(
            () -> {
              byte[] buffer = new byte[16 * 1024];
              try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
                for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
                  out.write(buffer, 0, n);
                  out.flush();
                }
              } catch (IOException e) {
                // one side closed
              } finally {
                try {
                  from.close();
                  to.close();
                } catch (IOException ignored) {
                  // nothing to do
                }
              }
            },
            "replica-pump");
    thread.setDaemon(true);
    thread.start();
  }

  /** Stops the replica: no more connections, and the held ones are closed. */
  @Override
  public void close() throws IOException {
    listener.close();
    dropConnections();
    try {
      acceptor.join(5000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
