package dev.secinfra.mtls;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.security.KeyManagementException;
import java.security.SecureRandom;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLContextSpi;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLServerSocketFactory;
import javax.net.ssl.SSLSessionContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManager;

/**
 * An {@link SSLContextSpi} over the JDK's own context whose engines, sockets, server sockets and
 * default parameters require a client certificate and allow TLS 1.3 and 1.2 only. Without it a
 * server built from the context would accept a client that sends no certificate at all, and the
 * trust manager (so the authorizer) would never run: a framework that only takes an {@code
 * SSLContext} must fail closed.
 */
final class RequireClientAuth extends SSLContextSpi {
  /** The protocols enabled everywhere (TLS 1.3 preferred). */
  static final String[] PROTOCOLS = {"TLSv1.3", "TLSv1.2"};

  private final SSLContext delegate;

  RequireClientAuth(SSLContext delegate) {
    this.delegate = delegate;
  }

  static SSLParameters restrict(SSLParameters parameters) {
    parameters.setProtocols(PROTOCOLS.clone());
    parameters.setNeedClientAuth(true);
    return parameters;
  }

  static SSLEngine restrict(SSLEngine engine) {
    engine.setEnabledProtocols(PROTOCOLS.clone());
    engine.setNeedClientAuth(true);
    return engine;
  }

  static Socket restrict(Socket socket) {
    if (socket instanceof SSLSocket) {
      ((SSLSocket) socket).setEnabledProtocols(PROTOCOLS.clone());
      ((SSLSocket) socket).setNeedClientAuth(true);
    }
    return socket;
  }

  static ServerSocket restrict(ServerSocket socket) {
    if (socket instanceof SSLServerSocket) {
      ((SSLServerSocket) socket).setEnabledProtocols(PROTOCOLS.clone());
      ((SSLServerSocket) socket).setNeedClientAuth(true);
    }
    return socket;
  }

  @Override
  protected void engineInit(KeyManager[] km, TrustManager[] tm, SecureRandom random)
      throws KeyManagementException {
    throw new KeyManagementException(
        "secinfra: mtls: this context is initialised by MtlsContext and cannot be re-initialised");
  }

  @Override
  protected SSLSocketFactory engineGetSocketFactory() {
    return new SocketFactory(delegate.getSocketFactory());
  }

  @Override
  protected SSLServerSocketFactory engineGetServerSocketFactory() {
    return new ServerSocketFactory(delegate.getServerSocketFactory());
  }

  @Override
  protected SSLEngine engineCreateSSLEngine() {
    return restrict(delegate.createSSLEngine());
  }

  @Override
  protected SSLEngine engineCreateSSLEngine(String host, int port) {
    return restrict(delegate.createSSLEngine(host, port));
  }

  @Override
  protected SSLSessionContext engineGetServerSessionContext() {
    return delegate.getServerSessionContext();
  }

  @Override
  protected SSLSessionContext engineGetClientSessionContext() {
    return delegate.getClientSessionContext();
  }

  @Override
  protected SSLParameters engineGetDefaultSSLParameters() {
    return restrict(delegate.getDefaultSSLParameters());
  }

  @Override
  protected SSLParameters engineGetSupportedSSLParameters() {
    return delegate.getSupportedSSLParameters();
  }

  /** Sockets (client sockets, and server-mode sockets a framework makes itself). */
  private static final class SocketFactory extends SSLSocketFactory {
    private final SSLSocketFactory delegate;

    SocketFactory(SSLSocketFactory delegate) {
      this.delegate = delegate;
    }

    @Override
    public String[] getDefaultCipherSuites() {
      return delegate.getDefaultCipherSuites();
    }

    @Override
    public String[] getSupportedCipherSuites() {
      return delegate.getSupportedCipherSuites();
    }

    @Override
    public Socket createSocket() throws IOException {
      return restrict(delegate.createSocket());
    }

    @Override
    public Socket createSocket(Socket s, String host, int port, boolean autoClose)
        throws IOException {
      return restrict(delegate.createSocket(s, host, port, autoClose));
    }

    @Override
    public Socket createSocket(String host, int port) throws IOException {
      return restrict(delegate.createSocket(host, port));
    }

    @Override
    public Socket createSocket(String host, int port, InetAddress localHost, int localPort)
        throws IOException {
      return restrict(delegate.createSocket(host, port, localHost, localPort));
    }

    @Override
    public Socket createSocket(InetAddress host, int port) throws IOException {
      return restrict(delegate.createSocket(host, port));
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort)
        throws IOException {
      return restrict(delegate.createSocket(address, port, localAddress, localPort));
    }
  }

  /** Server sockets: the sockets they accept inherit the need for a client certificate. */
  private static final class ServerSocketFactory extends SSLServerSocketFactory {
    private final SSLServerSocketFactory delegate;

    ServerSocketFactory(SSLServerSocketFactory delegate) {
      this.delegate = delegate;
    }

    @Override
    public String[] getDefaultCipherSuites() {
      return delegate.getDefaultCipherSuites();
    }

    @Override
    public String[] getSupportedCipherSuites() {
      return delegate.getSupportedCipherSuites();
    }

    @Override
    public ServerSocket createServerSocket() throws IOException {
      return restrict(delegate.createServerSocket());
    }

    @Override
    public ServerSocket createServerSocket(int port) throws IOException {
      return restrict(delegate.createServerSocket(port));
    }

    @Override
    public ServerSocket createServerSocket(int port, int backlog) throws IOException {
      return restrict(delegate.createServerSocket(port, backlog));
    }

    @Override
    public ServerSocket createServerSocket(int port, int backlog, InetAddress ifAddress)
        throws IOException {
      return restrict(delegate.createServerSocket(port, backlog, ifAddress));
    }
  }
}
