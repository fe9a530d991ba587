# frozen_string_literal: true

require "io/wait"
require "json"
require "logger"
require "net/http"
require "openssl"
require "securerandom"
require "timeout"
require "uri"

module Secinfra
  module Runtime
    # The HTTP transport every generated client calls (DESIGN.md "Client
    # behaviour"). One call = one {#call}: build the request from the RPC's
    # descriptor; serve cacheable reads from the cache when fresh, revalidate
    # them when stale (single-flight per key), fall back to a stale value
    # within stale-if-error; otherwise attempt the request with one
    # Idempotency-Key for every attempt, Secinfra-Attempt numbering, a
    # per-attempt timeout and a per-call deadline, retrying as {Retry.decide}
    # says and the retry budget allows. Connections are TLS 1.2+, present the
    # current identity snapshot (mTLS RPCs only), and verify the server by
    # chain to the trust bundle and by SPIFFE ID in the handshake. Thread-safe.
    class Transport
      ATTEMPT_HEADER = "Secinfra-Attempt"
      IDEMPOTENCY_HEADER = "Idempotency-Key"
      REQUEST_ID_HEADER = "request-id"
      # Idle connections kept per pool (one pool for mTLS, one for auth-NONE calls).
      POOL_SIZE = 16
      # Seconds an idle connection may wait for reuse (below the server's keep-alive).
      POOL_IDLE_SECONDS = 4.0
      # The response field holding an authz revision token (spec 7.10).
      REVISION_FIELD = :revision
      # Lowest TLS version (spec 2.1.1).
      MIN_TLS_VERSION = OpenSSL::SSL::TLS1_2_VERSION

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

      # One pooled connection and what it was opened with.
      Connection = Struct.new(:http, :key, :idle_since)

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

      # A complete HTTP answer.
      Answer = Struct.new(:status, :headers, :body, :attempts)

      attr_reader :cache, :budget, :use_cache

      # @param base_url [String] https://host:port
      # @param source [#ensure_identity, #bundle, #server_id, #refresh_bundle, #subscribe]
      def initialize(base_url, source, policy:, budget:, cache:, clock:, random:, use_cache: true,
                     logger: Logger.new($stderr, level: Logger::WARN), user_agent: nil)
        uri = URI.parse(base_url.to_s)
        unless uri.is_a?(URI::HTTPS) && uri.host
          raise ArgumentError, "secinfra: transport: the server URL must be https:// (mTLS), got #{base_url.inspect}"
        end

        @host = uri.host.delete_prefix("[").delete_suffix("]")
        @port = uri.port
        @base_path = uri.path.to_s.chomp("/")
        @source = source
        @policy = policy
        @budget = budget
        @cache = cache
        @clock = clock
        @random = random
        @use_cache = use_cache
        @logger = logger
        @flights = SingleFlight.new
        @lock = Mutex.new
        @pools = {}
        @spiffe_id = nil
        @user_agent = user_agent || Transport.user_agent
        source.subscribe(method(:on_rotation))
      end

      # +secinfra-ruby/<version> (ruby/<version>)+ (spec 2.4.1).
      def self.user_agent
        engine = defined?(RUBY_ENGINE) ? RUBY_ENGINE : "ruby"
        version = engine == "ruby" ? RUBY_VERSION : (defined?(RUBY_ENGINE_VERSION) ? RUBY_ENGINE_VERSION : RUBY_VERSION)
        "secinfra-ruby/#{Secinfra::VERSION} (#{engine.tr(" /()", "")}/#{version.tr(" /()", "")})"
      end

      # @api private
      def self.finish(http)
        http.finish if http.started?
      rescue IOError, SystemCallError, OpenSSL::SSL::SSLError
        nil
      end

      def inspect = "#<Secinfra::Runtime::Transport #{@host}:#{@port}>"
      alias to_s inspect

      # Closes every pooled connection and drops every cache entry (spec 7.11.3).
      def close
        @cache.clear
        pools = @lock.synchronize { @pools.values.tap { @pools.clear } }
        pools.each(&:close)
      end

      # Makes one RPC call.
      #
      # @param method [MethodDescriptor]
      # @param request [Message]
      # @param response_class [Class<Message>]
      # @param options [Secinfra::CallOptions, nil]
      # @return [Message]
      def call(method, request, response_class, options)
        policy = @policy.merged(options)
        deadline_at = @clock.monotonic + policy.deadline
        request_json = request.to_h
        use_cache = method.cacheable?
        use_cache &&= options&.use_cache.nil? ? @use_cache : options.use_cache
        return cached_call(method, request_json, response_class, options, policy, deadline_at) if use_cache

        answer = send_request(method, request_json, options, policy, deadline_at, nil)
        value = decode(method, answer, response_class)
        after_write(method, request_json, value)
        Secinfra.report(ResponseMeta.new(rpc: method.full_name, request_id: answer.headers[REQUEST_ID_HEADER],
                                         attempts: answer.attempts, from_cache: false, stale: false,
                                         status: answer.status))
        value
      rescue StandardError => e
        after_write(method, request_json, nil) if method.invalidates && unknown_outcome?(e)
        raise
      end

      private

      # A write whose outcome is unknown invalidates as a success would (spec 7.9.3).
      def unknown_outcome?(error)
        error.is_a?(TransportError) || (error.is_a?(Secinfra::Error) && error.status.to_i >= 500)
      end

      def after_write(method, request_json, value)
        inv = method.invalidates
        return if inv.nil? || request_json.nil?

        if inv.key_field.empty?
          @cache.invalidate_family(inv.resource)
        else
          @cache.invalidate(inv.resource, request_json.fetch(inv.key_field, "").to_s)
        end
        token = value.respond_to?(REVISION_FIELD) ? value.public_send(REVISION_FIELD) : nil
        @cache.record_write_revision(inv.resource, token) if token.is_a?(String) && !token.empty?
      end

      def cached_call(method, request_json, response_class, options, policy, deadline_at)
        key = CanonicalJson.cache_key(method.full_name, request_json)
        hit = @cache.lookup(key)
        if hit&.fresh
          Secinfra.report(ResponseMeta.new(rpc: method.full_name, request_id: nil, attempts: 0, from_cache: true,
                                           stale: false, status: nil))
          return hit.entry.value
        end
        value, meta = begin
          @flights.run(key, [deadline_at - @clock.monotonic, 0].max) do
            fetch(method, key, request_json, response_class, options, policy, deadline_at)
          end
        rescue SingleFlight::Timeout
          raise DeadlineExceeded.new(
            "secinfra: transport: #{method.full_name}: deadline of #{format("%g", policy.deadline)} s passed " \
            "while waiting for another caller's request for the same key",
            retryable: true, attempts: 0
          )
        end
        Secinfra.report(meta)
        value
      end

      def fetch(method, key, request_json, response_class, options, policy, deadline_at)
        current = @cache.lookup(key)
        if current&.fresh
          return [current.entry.value, ResponseMeta.new(rpc: method.full_name, request_id: nil, attempts: 0,
                                                        from_cache: true, stale: false, status: nil)]
        end

        generation = @cache.generation(method.cache.resource)
        begin
          answer = send_request(method, request_json, options, policy, deadline_at, current&.etag)
        rescue Secinfra::Error => e
          if current&.usable_on_error && server_failure?(e)
            return [current.entry.value, ResponseMeta.new(rpc: method.full_name, request_id: e.request_id,
                                                          attempts: e.attempts, from_cache: true, stale: true,
                                                          status: e.status)]
          end
          raise
        end
        if answer.status == 304 && current
          @cache.refresh(key, answer.headers)
          return [current.entry.value, ResponseMeta.new(rpc: method.full_name, request_id: answer.headers[REQUEST_ID_HEADER],
                                                        attempts: answer.attempts, from_cache: true, stale: false,
                                                        status: 304)]
        end
        value = decode(method, answer, response_class)
        key_field = method.cache.key_field
        revision = value.respond_to?(REVISION_FIELD) ? value.public_send(REVISION_FIELD) : nil
        @cache.store(key, value, answer.headers, resource: method.cache.resource,
                                                 resource_key: key_field.empty? ? "" : request_json.fetch(key_field, "").to_s,
                                                 revision: revision.is_a?(String) && !revision.empty? ? revision : nil,
                                                 generation: generation)
        [value, ResponseMeta.new(rpc: method.full_name, request_id: answer.headers[REQUEST_ID_HEADER],
                                 attempts: answer.attempts, from_cache: false, stale: false, status: answer.status)]
      end

      # Stale-if-error applies: no answer, or a status of 500 or above (spec 7.6).
      def server_failure?(error)
        return false if error.is_a?(IdentityExpired)

        error.is_a?(TransportError) || error.status.to_i >= 500
      end

      def decode(method, answer, response_class)
        data = answer.body.nil? || answer.body.empty? ? {} : JSON.parse(answer.body)
        response_class.from_h(data)
      rescue JSON::ParserError, DecodeError => e
        raise TransportError.new(
          "secinfra: transport: #{method.full_name}: the server's answer is not a valid " \
          "#{response_class.name.split("::").last}: #{e.message[0, 200]}",
          status: answer.status, request_id: answer.headers[REQUEST_ID_HEADER], attempts: answer.attempts
        )
      end

      # -- building requests --------------------------------------------------------

      def path_and_body(method, request_json)
        path = method.path.dup
        method.path_params.each do |name|
          value = request_json.fetch(name, "").to_s
          multi = "{#{name}=**}"
          path = if path.include?(multi)
                   path.sub(multi) { escape_path(value, keep_slash: true) }
                 else
                   path.sub("{#{name}}") { escape_path(value, keep_slash: false) }
                 end
        end
        path = @base_path + path
        if %w[GET DELETE].include?(method.http_method)
          pairs = method.query_params.flat_map do |name|
            next [] unless request_json.key?(name)

            Array(request_json[name]).map { |v| [name, query_value(v)] }
          end
          path += "?#{URI.encode_www_form(pairs)}" unless pairs.empty?
          return [path, nil]
        end
        body = request_json.reject { |k, _| method.path_params.include?(k) }
        [path, JSON.generate(body)]
      end

      def escape_path(value, keep_slash:)
        allowed = keep_slash ? %r{[A-Za-z0-9\-._~/]} : /[A-Za-z0-9\-._~]/
        value.b.each_char.map { |c| c.match?(allowed) ? c : format("%%%02X", c.ord) }.join
      end

      def query_value(value)
        case value
        when true then "true"
        when false then "false"
        else value.to_s
        end
      end

      # -- attempts ---------------------------------------------------------------

      def send_request(method, request_json, options, policy, deadline_at, if_none_match)
        path, body = path_and_body(method, request_json)
        headers = { "User-Agent" => @user_agent, "Accept" => "application/json" }
        headers["Content-Type"] = "application/json" if body
        headers[IDEMPOTENCY_HEADER] = options&.idempotency_key || SecureRandom.uuid unless method.read_only?
        headers["If-None-Match"] = if_none_match if if_none_match
        name = method.full_name
        refreshed = false
        attempt = 1
        loop do
          remaining = deadline_at - @clock.monotonic
          if remaining <= 0
            raise DeadlineExceeded.new(
              "secinfra: transport: #{name}: deadline of #{format("%g", policy.deadline)} s passed after " \
              "#{attempt - 1} attempts", retryable: true, attempts: attempt - 1
            )
          end
          identity = nil
          if method.mtls?
            begin
              identity = @source.ensure_identity(deadline_at)
            rescue IdentityExpired => e
              e.attempts = attempt - 1
              raise
            end
          end
          headers[ATTEMPT_HEADER] = attempt.to_s
          timeout = [policy.attempt_timeout, remaining].min
          outcome = attempt_once(method, identity, path, body, headers, timeout)
          case outcome
          when VerificationFailure
            if outcome.kind == :chain && !refreshed
              refreshed = true
              next if @source.refresh_bundle
            end
            raise TransportError.new("secinfra: transport: #{name}: #{outcome.message}", attempts: attempt)
          when Answer
            outcome.attempts = attempt
            if (200..299).cover?(outcome.status) || (outcome.status == 304 && if_none_match)
              @budget.record_success
              return outcome
            end
            if outcome.status < 400
              raise InternalError.new(
                "secinfra: transport: #{name}: unexpected HTTP #{outcome.status} (the API answers 2xx, " \
                "or 304 to a conditional request)",
                status: outcome.status, request_id: outcome.headers[REQUEST_ID_HEADER], attempts: attempt
              )
            end
            result = AttemptResponse.new(outcome.status, outcome.headers)
            answer = outcome
            failure = nil
          else # [AttemptFailure, exception]
            result, failure = outcome
            answer = nil
          end
          decision = Retry.decide(result, policy: policy, safe_to_repeat: method.safe_to_repeat?,
                                          has_key: headers.key?(IDEMPOTENCY_HEADER), attempt: attempt,
                                          remaining: deadline_at - @clock.monotonic, now: @clock.now,
                                          random: @random, budget: @budget)
          raise final_error(method, policy, failure, decision, answer, attempt) unless decision.retry

          @clock.sleep(decision.delay)
          attempt += 1
        end
      end

      # One attempt: an Answer, a VerificationFailure, or [AttemptFailure, exception].
      def attempt_once(method, identity, path, body, headers, timeout)
        bundle = @source.bundle
        pool = pool_for(method.mtls?, identity, bundle)
        sent = false
        conn = nil
        verifier = nil
        Timeout.timeout(timeout, AttemptTimeout) do
          conn = pool.checkout(@clock.monotonic)
          if conn.nil?
            verifier = ServerVerifier.new(@source.server_id)
            conn = Connection.new(open_connection(identity, bundle, verifier, timeout), pool.key, nil)
          end
          set_timeouts(conn.http, timeout)
          request = REQUEST_CLASSES.fetch(method.http_method).new(path, headers.dup)
          request.body = body if body
          sent = true
          response = conn.http.request(request)
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

      def open_connection(identity, bundle, verifier, timeout)
        http = Net::HTTP.new(@host, @port)
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

      def pool_for(mtls, identity, bundle)
        key = pool_key(mtls, identity, bundle)
        old = nil
        pool = @lock.synchronize do
          current = @pools[mtls]
          if current.nil? || current.key != key
            old = current
            @pools[mtls] = Pool.new(key)
          else
            current
          end
        end
        old&.close
        pool
      end

      def release(conn)
        pool = @lock.synchronize { @pools.values.find { |p| p.key == conn.key } }
        return Transport.finish(conn.http) if pool.nil?

        Transport.finish(conn.http) unless pool.checkin(conn)
      end

      # Closes idle connections an identity or bundle change outdated (spec 9.6.2,
      # 10.5.2), and drops the cache when the SPIFFE ID changed (spec 7.11.4).
      def on_rotation(event)
        spiffe_id = event.identity&.spiffe_id
        changed = @lock.synchronize do
          previous = @spiffe_id
          @spiffe_id = spiffe_id if spiffe_id
          previous && spiffe_id && previous != spiffe_id
        end
        @cache.clear if changed
        wanted = {
          false => pool_key(false, nil, event.bundle),
          true => pool_key(true, event.identity, event.bundle)
        }
        outdated = @lock.synchronize do
          stale = @pools.select { |mtls, pool| pool.key != wanted[mtls] }
          stale.each_key { |k| @pools.delete(k) }
          stale.values
        end
        outdated.each(&:close)
      end

      def final_error(method, policy, failure, decision, answer, attempt)
        name = method.full_name
        if answer.nil?
          error_class = decision.reason == :deadline_exceeded ? DeadlineExceeded : TransportError
          what = describe(failure)
          message = if error_class == DeadlineExceeded
                      "secinfra: transport: #{name}: deadline of #{format("%g", policy.deadline)} s passed: #{what}"
                    else
                      "secinfra: transport: #{name}: #{what} (#{decision.message})"
                    end
          retryable = decision.reason != :unsafe_to_resend
          return wrap(error_class.new(message, retryable: retryable, attempts: attempt), failure)
        end
        envelope = envelope_of(answer.body)
        code = decision.code || (envelope["code"].is_a?(String) && !envelope["code"].empty? ? envelope["code"] : Secinfra.code_for_status(answer.status))
        message = envelope["message"].is_a?(String) && !envelope["message"].empty? ? envelope["message"] : "secinfra: transport: #{name}: HTTP #{answer.status}"
        message = "#{message} (#{decision.message})" if %i[attempts_exhausted budget_exhausted deadline_exceeded retry_after_too_long retry_after_past_deadline].include?(decision.reason) && !envelope["message"].is_a?(String)
        error_class = case decision.code
                      when "rate_limited" then RateLimited
                      when "unavailable" then Unavailable
                      else Secinfra.error_class_for(code)
                      end
        request_id = answer.headers[REQUEST_ID_HEADER] || (envelope["request_id"].is_a?(String) ? envelope["request_id"] : nil)
        details = envelope["details"].is_a?(Hash) ? envelope["details"] : {}
        error_class.new(message, code: code, status: answer.status, request_id: request_id,
                                 retryable: Retry.status_retryable?(answer.status, answer.headers, method.safe_to_repeat?),
                                 retry_after: decision.retry_after, details: details, attempts: attempt)
      end

      # Raises +error+ with +cause+ as its cause (Ruby keeps it as Exception#cause).
      def wrap(error, cause)
        return error if cause.nil?

        begin
          raise cause
        rescue StandardError
          begin
            raise error
          rescue StandardError => e
            return e
          end
        end
      end

      def envelope_of(body)
        doc = JSON.parse(body.to_s)
        doc.is_a?(Hash) && doc["error"].is_a?(Hash) ? doc["error"] : {}
      rescue JSON::ParserError
        {}
      end

      def describe(failure)
        case failure
        when nil then "no answer"
        when AttemptTimeout, Net::OpenTimeout, Net::ReadTimeout, Net::WriteTimeout then "the attempt timed out"
        else "connection failed (#{failure.class}: #{failure.message[0, 200]})"
        end
      end
    end
  end
end
