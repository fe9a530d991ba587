# frozen_string_literal: true

require "logger"
require "openssl"
require "socket"

module Secinfra
  module MTLS
    # An mTLS listener over a TCPServer, in the place of
    # OpenSSL::SSL::SSLServer: each accepted connection gets the context of
    # the source's current snapshot and bundle ({Context#current}), so a
    # renewal or a CA rotation takes effect on the next handshake without a
    # restart; the handshake is bounded in time and followed by the
    # post-handshake check, so the caller only ever holds a verified peer.
    #
    #   server = Secinfra::MTLS.server(TCPServer.new("127.0.0.1", 0), source, authorizer: authorizer)
    #   server.serve { |ssl| ssl.puts "hello #{Secinfra::MTLS.peer_id(ssl)}" }
    #   ...
    #   server.close
    class Server
      # Seconds a peer has to complete the handshake.
      HANDSHAKE_TIMEOUT = 10.0
      # Seconds {#close} waits for connection threads to end.
      CLOSE_GRACE = 5.0
      # Seconds {#serve} waits after a failed accept before the next one.
      ACCEPT_RETRY = 0.1

      # @param tcp_server [TCPServer]
      # @param context [Context] a server context ({MTLS.server_context})
      # @param handshake_timeout [Float] seconds
      def initialize(tcp_server, context, handshake_timeout: HANDSHAKE_TIMEOUT,
                     logger: Logger.new($stderr, level: Logger::WARN))
        unless context.is_a?(Context) && context.server?
          raise ArgumentError, "secinfra: mtls: give a server context from Secinfra::MTLS.server_context"
        end

        @tcp = tcp_server
        @context = context
        @handshake_timeout = handshake_timeout
        @logger = logger
        @lock = Mutex.new
        @connections = {}
        @closed = false
      end

      # @return [Integer] the port it listens on
      def port = @tcp.local_address.ip_port

      # Accepts one connection and completes its handshake.
      #
      # @return [OpenSSL::SSL::SSLSocket] a verified connection ({MTLS.peer_id} names the peer)
      # @raise [PeerRefused] when the peer was refused
      # @raise [OpenSSL::SSL::SSLError, SystemCallError, IOError] when the handshake failed otherwise
      def accept = establish(@tcp.accept)

      # Accepts connections until {#close}, each handshake and +handler+ in
      # a thread of its own; the connection is closed when +handler+
      # returns. Refused peers and failed handshakes are logged, never
      # handed to +handler+; an error +handler+ raises is logged and ends
      # its connection only.
      #
      # @yieldparam ssl [OpenSSL::SSL::SSLSocket] a verified connection
      # @return [void] once closed
      def serve(&handler)
        raise ArgumentError, "secinfra: mtls: serve needs a block" if handler.nil?

        until closed?
          socket = begin
            @tcp.accept
          rescue IOError, SystemCallError => e
            break if closed?

            # Out of file descriptors, say: keep serving once some are free.
            @logger.warn("secinfra: mtls: accept failed: #{e.class}: #{e.message}")
            sleep ACCEPT_RETRY
            next
          end
          spawn(socket, handler)
        end
      end

      # Stops accepting, closes the open connections and waits (bounded) for
      # their threads.
      def close
        connections = @lock.synchronize do
          @closed = true
          @connections.dup
        end
        @tcp.close unless @tcp.closed?
        connections.each_key { |io| io.close unless io.closed? }
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + CLOSE_GRACE
        connections.each_value do |thread|
          thread&.join([deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC), 0].max)
        end
      end

      def closed? = @lock.synchronize { @closed }

      private

      def spawn(socket, handler)
        @lock.synchronize do
          # Registered before the thread runs, so close finds it; its ensure waits for this lock.
          @connections[socket] = Thread.new { run_connection(socket, handler) }
        end
      end

      def run_connection(socket, handler)
        ssl = establish(socket)
        handler.call(ssl)
      rescue PeerRefused
        nil # logged by the verifier
      rescue OpenSSL::SSL::SSLError, IOError, SystemCallError => e
        @logger.warn("secinfra: mtls: a connection failed: #{e.class}: #{e.message}") unless closed?
      rescue StandardError => e # the handler's, or the source's (IdentityExpired): this connection ends, serving goes on
        @logger.warn("secinfra: mtls: a connection ended with #{e.class}: #{e.message}")
      ensure
        (ssl || socket).close
        @lock.synchronize { @connections.delete(socket) }
      end

      def establish(socket)
        PeerVerifier.reset
        # As Go does for every TCP connection: small writes (a ticket, then an
        # answer) must not wait for a delayed ACK.
        socket.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1) if socket.is_a?(TCPSocket)
        ssl = OpenSSL::SSL::SSLSocket.new(socket, @context.current)
        ssl.sync_close = true
        handshake(ssl)
        MTLS.remember_peer(ssl, @context.confirm(ssl))
        ssl
      rescue OpenSSL::SSL::SSLError => e
        (ssl || socket).close
        refusal = PeerVerifier.take_refusal
        raise refusal if refusal

        raise e
      rescue StandardError
        (ssl || socket).close
        raise
      end

      def handshake(ssl)
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + @handshake_timeout
        loop do
          state = ssl.accept_nonblock(exception: false)
          return if state == ssl

          left = [deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC), 0].max
          ready = state == :wait_writable ? ssl.to_io.wait_writable(left) : ssl.to_io.wait_readable(left)
          raise Errno::ETIMEDOUT, "secinfra: mtls: the TLS handshake took longer than #{@handshake_timeout} s" unless ready
        end
      end
    end
  end
end
