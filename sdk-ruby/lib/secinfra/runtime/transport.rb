# frozen_string_literal: true

require "io/wait"
require "net/http"
require "openssl"
require "timeout"
require "uri"

module Secinfra
  module Runtime
    # Connections and TLS, nothing else (no retries, cache or error
    # decoding: those are the CallPipeline's). One {#exchange} sends one
    # request on a pooled or new connection and reads its answer within the
    # attempt's timeout. Connections are TLS 1.2+, present the identity
    # snapshot the caller passes (mTLS RPCs only), and verify the server in
    # the handshake by chain to the source's current trust bundle and by
    # SPIFFE ID, so no request byte reaches a server that fails either check
    # (spec 2.1, 8.5). Pools are per endpoint (spec 12.1.4) and keyed by
    # snapshot and bundle: a rotation closes the idle connections it outdated
    # (spec 9.6.2, 10.5.2). Which endpoint an attempt goes to is the
    # pipeline's choice ({EndpointSet}). Thread-safe.
    class Transport
      # Idle connections kept per pool (per endpoint, one pool for mTLS, one for auth-NONE calls).
      POOL_SIZE = 16
      # Seconds an idle connection may wait for reuse (below the server's keep-alive).
      POOL_IDLE_SECONDS = 4.0
      # Lowest TLS version (spec 2.1.1).
      MIN_TLS_VERSION = OpenSSL::SSL::TLS1_2_VERSION

      # The Net::HTTP request class of each verb the API binds.
      REQUEST_CLASSES = {
        "GET" => Net::HTTP::Get, "POST" => Net::HTTP::Post, "PUT" => Net::HTTP::Put,
        "PATCH" => Net::HTTP::Patch, "DELETE" => Net::HTTP::Delete
      }.freeze

      # Raised inside an attempt whose time ran out.
      class AttemptTimeout < StandardError; end

      # A connection that failed server verification (spec 8.5).
      class VerificationFailure < StandardError
        attr_reader :kind

        def initialize(kind, message)
          @kind = kind
          super(message)
        end
      end

      # Checks the server in the TLS handshake: chain to the bundle (OpenSSL's
      # verdict) and exactly one URI SAN equal to the server ID, so that no
      # request byte is sent to a server that fails either check.
      class ServerVerifier
        attr_reader :failure

        def initialize(server_id)
          @server_id = server_id
          @failure = nil
        end

        def to_proc
          lambda do |ok, ctx|
            unless ok
              @failure ||= VerificationFailure.new(
                :chain, "the server's certificate does not chain to the trust bundle (#{ctx.error_string}); " \
                        "check that the client's bundle is current"
              )
              next false
            end
            if ctx.error_depth.zero?
              uris = Identity.uri_sans(ctx.current_cert)
              unless uris.size == 1 && uris.first == @server_id
                @failure = VerificationFailure.new(
                  :spiffe_id, "the server presented SPIFFE ID #{uris.join(", ").then { |s| s.empty? ? "(none)" : s }}, " \
                              "expected #{@server_id}"
                )
                next false
              end
            end
            true
          end
        end
      end

      # One pooled connection and the pool (endpoint, snapshot, bundle) it was opened for.
      Connection = Struct.new(:http, :pool, :idle_since)

      # Idle connections for one identity snapshot and bundle.
      class Pool
        attr_reader :key

        def initialize(key)
          @key = key
          @idle = []
          @lock = Mutex.new
        end

        # An idle connection that is still usable, or nil.
        def checkout(now)
          loop do
            conn = @lock.synchronize { @idle.pop }
            return nil if conn.nil?
            return conn if usable?(conn, now)

            Transport.finish(conn.http)
          end
        end

        # Keeps +conn+ for reuse; false when the pool is full (the caller closes it).
        def checkin(conn)
          @lock.synchronize do
            return false if @idle.size >= POOL_SIZE

            @idle.push(conn)
            true
          end
        end

        def close
          conns = @lock.synchronize { @idle.dup.tap { @idle.clear } }
          conns.each { |c| Transport.finish(c.http) }
        end

        private

        def usable?(conn, now)
          return false if now - conn.idle_since > POOL_IDLE_SECONDS

          io = conn.http.instance_variable_get(:@socket)&.io
          return false if io.nil? || io.closed?

          # Readable while idle means the server closed it (or sent garbage).
          !io.to_io.wait_readable(0)
        rescue IOError, SystemCallError
          false
        end
      end

      # @return [EndpointSet] the endpoints this transport connects to
      attr_reader :endpoints

      # @param endpoints [EndpointSet, String] the client's endpoints (a URL: that one endpoint)
      # @param source [Identity::Source] asked for the bundle and server ID on every new connection
      # @raise [ArgumentError] when a URL is not https://
      def initialize(endpoints, source, clock:)
        @endpoints = endpoints.is_a?(EndpointSet) ? endpoints : EndpointSet.new(endpoints, clock: clock, random: Random.new)
        @source = source
        @clock = clock
        @lock = Mutex.new
        @pools = {}
        source.subscribe(method(:on_rotation))
      end

      # @return [String] the home endpoint's path ("" or "/prefix"), put before every RPC path sent there
      def base_path = @endpoints.home.base_path

      # @api private
      def self.finish(http)
        http.finish if http.started?
      rescue IOError, SystemCallError, OpenSSL::SSL::SSLError
        nil
      end

      def inspect = "#<Secinfra::Runtime::Transport #{@endpoints.endpoints.map(&:url).join(", ")}>"
      alias to_s inspect

      # Closes every pooled connection.
      def close
        pools = @lock.synchronize { @pools.values.tap { @pools.clear } }
        pools.each(&:close)
      end

      # Sends +request+ once and reads the answer.
      #
      # @param request [EncodedRequest] its path without the endpoint's path prefix
      # @param endpoint [Endpoint] where to send it (default: the home endpoint)
      # @param mtls [Boolean] present +identity+ (false: no client certificate)
      # @param identity [X509Identity, nil] the snapshot to present
      # @param timeout [Float] seconds for the whole exchange, connecting included
      # @return [Answer, VerificationFailure, Array(AttemptFailure, Exception)] an
      #   answer (+attempts+ 0: the caller numbers it), a server that failed
      #   verification before anything was sent, or no answer and why
      def exchange(request, mtls:, identity:, timeout:, endpoint: @endpoints.home)
        bundle = @source.bundle
        pool = pool_for(endpoint, mtls, identity, bundle)
        sent = false
        conn = nil
        verifier = nil
        AttemptWatchdog.shared.run(timeout, AttemptTimeout) do
          conn = pool.checkout(@clock.monotonic)
          if conn.nil?
            verifier = ServerVerifier.new(@source.server_id)
            conn = Connection.new(open_connection(endpoint, identity, bundle, verifier, timeout), pool, nil)
          end
          set_timeouts(conn.http, timeout)
          http_request = REQUEST_CLASSES.fetch(request.http_method).new(endpoint.base_path + request.path,
                                                                        request.headers.dup)
          http_request.body = request.body if request.body
          sent = true
          response = conn.http.request(http_request)
          answer = Answer.new(response.code.to_i, response_headers(response), response.body.to_s, 0)
          conn.idle_since = @clock.monotonic
          release(conn)
          conn = nil
          return answer
        end
      rescue AttemptTimeout, Net::OpenTimeout, Net::ReadTimeout, Net::WriteTimeout => e
        [AttemptFailure.new(sent || e.is_a?(Net::ReadTimeout) || e.is_a?(Net::WriteTimeout), true), e]
      rescue OpenSSL::SSL::SSLError, SystemCallError, IOError, SocketError, EOFError,
             Net::HTTPBadResponse, Net::ProtocolError, Zlib::Error => e
        return verifier.failure if verifier&.failure && !sent

        [AttemptFailure.new(sent, false), e]
      ensure
        Transport.finish(conn.http) if conn
      end

      private

      def open_connection(endpoint, identity, bundle, verifier, timeout)
        http = Net::HTTP.new(endpoint.host, endpoint.port)
        http.use_ssl = true
        http.min_version = MIN_TLS_VERSION
        http.verify_mode = OpenSSL::SSL::VERIFY_PEER
        http.verify_hostname = false # the SPIFFE ID is verified instead (spec 8.5.3)
        http.cert_store = bundle.store
        http.verify_callback = verifier.to_proc
        if identity
          http.cert = identity.leaf
          http.key = identity.key
          http.extra_chain_cert = identity.chain[1..] if identity.chain.size > 1
        end
        http.max_retries = 0 # retries are the runtime's (spec 3.1.1)
        http.keep_alive_timeout = POOL_IDLE_SECONDS
        set_timeouts(http, timeout)
        http.start
        http
      end

      def set_timeouts(http, timeout)
        http.open_timeout = timeout
        http.read_timeout = timeout
        http.write_timeout = timeout
        http.ssl_timeout = timeout
      end

      def response_headers(response)
        headers = {}
        response.each_header { |k, v| headers[k.downcase] = v }
        headers
      end

      def pool_key(mtls, identity, bundle)
        [mtls, mtls ? identity&.serial : nil, bundle.fingerprint]
      end

      # The pool of +endpoint+ for +mtls+, made anew when its key is outdated.
      def pool_for(endpoint, mtls, identity, bundle)
        key = pool_key(mtls, identity, bundle)
        old = nil
        pool = @lock.synchronize do
          current = @pools[[endpoint.url, mtls]]
          if current.nil? || current.key != key
            old = current
            @pools[[endpoint.url, mtls]] = Pool.new(key)
          else
            current
          end
        end
        old&.close
        pool
      end

      def release(conn)
        pool = @lock.synchronize { @pools.values.find { |p| p.equal?(conn.pool) } }
        return Transport.finish(conn.http) if pool.nil?

        Transport.finish(conn.http) unless pool.checkin(conn)
      end

      # Closes idle connections an identity or bundle change outdated (spec 9.6.2, 10.5.2).
      def on_rotation(event)
        wanted = {
          false => pool_key(false, nil, event.bundle),
          true => pool_key(true, event.identity, event.bundle)
        }
        outdated = @lock.synchronize do
          stale = @pools.select { |(_url, mtls), pool| pool.key != wanted[mtls] }
          stale.each_key { |k| @pools.delete(k) }
          stale.values
        end
        outdated.each(&:close)
      end
    end
  end
end
