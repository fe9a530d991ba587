# frozen_string_literal: true

require "logger"

module Secinfra
  module Runtime
    # The pipeline behind every generated client: the one {RPC::Invoker} of
    # a client (DESIGN.md "Client behaviour"). One call = one {#invoke}:
    # encode the request from the RPC's descriptor ({Request}); serve
    # cacheable reads from the cache when fresh, revalidate them when stale
    # (one request per key: {SingleFlight}), fall back to a stale value
    # within stale-if-error; otherwise make attempts over the {Transport}
    # with one Idempotency-Key for all of them, Secinfra-Attempt numbering, a
    # per-attempt timeout and a per-call deadline, retrying as {Retry.decide}
    # says and the {RetryBudget} pays for; turn the answer into the result or
    # a typed error ({Answers}); and drop the cache entries a write outdated.
    # Each attempt goes to the endpoint {EndpointSet#choose} gives and its
    # outcome updates that endpoint's cooldown (spec 12): a move to another
    # endpoint is an ordinary retry. The client's {Observers} are told of
    # the call's start and end, the cache's answer and every attempt, and
    # may add trace context to an attempt (spec 14); without observers the
    # pipeline sends and returns exactly what it would otherwise. Thread-safe.
    class CallPipeline
      include RPC::Invoker

      # The response field holding an authz revision token (spec 7.10).
      REVISION_FIELD = :revision

      attr_reader :cache, :budget, :use_cache
      # @return [EndpointSet] the client's endpoints (its transport's)
      attr_reader :endpoints

      # @param transport [Transport]
      # @param source [Identity::Source] the identity mTLS calls present
      # @param policy [RetryPolicy] the client's retry settings
      # @param budget [RetryBudget] the client's retry budget
      # @param cache [ResponseCache] the client's response cache
      # @param use_cache [Boolean] the client's default for cacheable calls
      # @param observers [Observers] the client's observers (spec 14)
      def initialize(transport, source, policy:, budget:, cache:, clock:, random:, use_cache: true,
                     user_agent: Request.user_agent, observers: Observers.new)
        @transport = transport
        @endpoints = transport.endpoints
        @source = source
        @policy = policy
        @budget = budget
        @cache = cache
        @clock = clock
        @random = random
        @use_cache = use_cache
        @user_agent = user_agent
        @observers = observers
        @flights = SingleFlight.new
        @lock = Mutex.new
        @spiffe_id = nil
        source.subscribe(method(:on_rotation))
      end

      def inspect = "#<Secinfra::Runtime::CallPipeline #{@transport.inspect}>"
      alias to_s inspect

      # Drops every cache entry (spec 7.11.3) and closes every connection.
      def close
        @cache.clear
        @transport.close
      end

      # Makes one RPC call (see {RPC::Invoker#invoke}).
      #
      # @param descriptor [RPC::MethodDescriptor]
      # @param request [RPC::Message]
      # @param response_class [Class<RPC::Message>]
      # @param options [RPC::CallOptions, nil]
      # @return [RPC::Message]
      def invoke(descriptor, request, response_class, options)
        # call_started and call_finished exactly once per call (spec 14.2.2).
        @observers.call_started(descriptor)
        begin
          value, meta = perform(descriptor, request, response_class, options)
        rescue StandardError => e
          @observers.call_finished(descriptor.full_name, error: e)
          raise
        end
        # A fresh cache hit makes its metadata only for someone who reads
        # it: a capture block or an observer.
        return value if meta.nil? && @observers.empty? && !Secinfra.capturing?

        meta ||= fresh_hit_meta(descriptor)
        Secinfra.report(meta)
        @observers.call_finished(descriptor.full_name, meta: meta)
        value
      end

      private

      # The metadata of a fresh cache hit (no request made).
      def fresh_hit_meta(descriptor)
        ResponseMeta.new(rpc: descriptor.full_name, request_id: nil, attempts: 0, from_cache: true, stale: false,
                         status: nil, endpoint: nil)
      end

      # The call: its value and metadata (nil: a fresh cache hit, made by
      # {#fresh_hit_meta} when needed), or the error it ends with.
      def perform(descriptor, request, response_class, options)
        policy = @policy.merged(options)
        deadline_at = @clock.monotonic + policy.deadline
        use_cache = descriptor.cacheable?
        use_cache &&= options&.use_cache.nil? ? @use_cache : options.use_cache
        # No cacheable RPC invalidates (a read), so request_json stays nil
        # on that path only for after_write, which then does nothing.
        return cached_call(descriptor, request, response_class, options, policy, deadline_at) if use_cache

        request_json = request.to_h
        answer = send_request(descriptor, request_json, options, policy, deadline_at, nil)
        value = Answers.decode_result(descriptor, answer, response_class)
        after_write(descriptor, request_json, value)
        [value, ResponseMeta.new(rpc: descriptor.full_name, request_id: Answers.request_id(answer),
                                 attempts: answer.attempts, from_cache: false, stale: false,
                                 status: answer.status, endpoint: answer.endpoint)]
      rescue StandardError => e
        after_write(descriptor, request_json, nil) if descriptor.invalidates && unknown_outcome?(e)
        raise
      end

      # A write whose outcome is unknown invalidates as a success would (spec 7.9.3).
      def unknown_outcome?(error)
        error.is_a?(TransportError) || (error.is_a?(Secinfra::Error) && error.status.to_i >= 500)
      end

      def after_write(descriptor, request_json, value)
        inv = descriptor.invalidates
        return if inv.nil? || request_json.nil?

        if inv.key_field.empty?
          @cache.invalidate_family(inv.resource)
        else
          @cache.invalidate(inv.resource, request_json.fetch(inv.key_field, "").to_s)
        end
        token = value.respond_to?(REVISION_FIELD) ? value.public_send(REVISION_FIELD) : nil
        @cache.record_write_revision(inv.resource, token) if token.is_a?(String) && !token.empty?
      end

      # A cacheable call: the key is made from the message itself, and its
      # wire JSON form only when a request follows.
      def cached_call(descriptor, request, response_class, options, policy, deadline_at)
        key = ResponseCache.key(descriptor.full_name, request)
        revalidate = options&.revalidate == true
        hit = @cache.lookup(key)
        if hit&.fresh && !revalidate
          @observers.cache(descriptor.full_name, :hit)
          return [hit.entry.value, nil]
        end
        # What the cache answered at this lookup; the request that follows
        # (this call's, or the one in flight for the key) fetches or revalidates.
        @observers.cache(descriptor.full_name, hit ? :revalidate : :miss)
        request_json = request.to_h
        begin
          @flights.run(key, [deadline_at - @clock.monotonic, 0].max) do
            fetch(descriptor, key, request_json, response_class, options, policy, deadline_at, revalidate)
          end
        rescue SingleFlight::Timeout
          raise DeadlineExceeded.new(
            "secinfra: transport: #{descriptor.full_name}: deadline of #{format("%g", policy.deadline)} s passed " \
            "while waiting for another caller's request for the same key",
            retryable: true, attempts: 0
          )
        end
      end

      # The request of a cache miss or revalidation (run once per key at a
      # time). A revalidating call always reaches the server and never falls
      # back to a stale entry (spec 7.12.2).
      def fetch(descriptor, key, request_json, response_class, options, policy, deadline_at, revalidate)
        current = @cache.lookup(key)
        if current&.fresh && !revalidate
          return [current.entry.value, ResponseMeta.new(rpc: descriptor.full_name, request_id: nil, attempts: 0,
                                                        from_cache: true, stale: false, status: nil, endpoint: nil)]
        end

        generation = @cache.generation(descriptor.cache.resource)
        begin
          answer = send_request(descriptor, request_json, options, policy, deadline_at, current&.etag)
        rescue Secinfra::Error => e
          if current&.usable_on_error && !revalidate && server_failure?(e)
            return [current.entry.value, ResponseMeta.new(rpc: descriptor.full_name, request_id: e.request_id,
                                                          attempts: e.attempts, from_cache: true, stale: true,
                                                          status: e.status, endpoint: e.endpoint)]
          end
          raise
        end
        if answer.status == 304 && current
          @cache.refresh(key, answer.headers)
          return [current.entry.value, ResponseMeta.new(rpc: descriptor.full_name,
                                                        request_id: Answers.request_id(answer),
                                                        attempts: answer.attempts, from_cache: true, stale: false,
                                                        status: 304, endpoint: answer.endpoint)]
        end
        value = Answers.decode_result(descriptor, answer, response_class)
        key_field = descriptor.cache.key_field
        revision = value.respond_to?(REVISION_FIELD) ? value.public_send(REVISION_FIELD) : nil
        @cache.store(key, value, answer.headers,
                     resource: descriptor.cache.resource,
                     resource_key: key_field.empty? ? "" : request_json.fetch(key_field, "").to_s,
                     revision: revision.is_a?(String) && !revision.empty? ? revision : nil,
                     generation: generation)
        [value, ResponseMeta.new(rpc: descriptor.full_name, request_id: Answers.request_id(answer),
                                 attempts: answer.attempts, from_cache: false, stale: false, status: answer.status,
                                 endpoint: answer.endpoint)]
      end

      # Stale-if-error applies: no answer, or a status of 500 or above (spec
      # 7.6); never when no request was made, as when the deadline passed
      # while the call waited for an identity (7.6.3).
      def server_failure?(error)
        return false if error.is_a?(IdentityExpired) || error.attempts.zero?

        error.is_a?(TransportError) || error.status.to_i >= 500
      end

      # Makes attempts until one succeeds (an Answer) or the retry rules end
      # the call (raised as its typed error, naming the last attempt's
      # endpoint). The request is the same at every endpoint (spec 12.3.4):
      # the transport puts the endpoint's path prefix before its path.
      def send_request(descriptor, request_json, options, policy, deadline_at, if_none_match)
        request = Request.encode_request(descriptor, request_json, base_path: "", user_agent: @user_agent,
                                                                   idempotency_key: options&.idempotency_key,
                                                                   if_none_match: if_none_match)
        name = descriptor.full_name
        refreshed = false
        attempt = 1
        endpoint = nil
        repeat_at = nil
        answered = nil # the last attempt that got an answer (spec 11.5)
        loop do
          remaining = deadline_at - @clock.monotonic
          raise deadline_passed(name, policy, attempt, endpoint, answered) if remaining <= 0

          identity = nil
          if descriptor.mtls?
            # Waiting for an identity (a re-enrolment) is bounded by the
            # deadline, and no attempt starts after it (spec 5.1.2, 5.1.3).
            identity = identity_for(name, policy, deadline_at, attempt, endpoint, answered)
            remaining = deadline_at - @clock.monotonic
            raise deadline_passed(name, policy, attempt, endpoint, answered) if remaining <= 0
          end
          request.headers[Request::ATTEMPT_HEADER] = attempt.to_s
          # The repeat after a bundle refresh goes where verification failed (12.6.2).
          endpoint = repeat_at || @endpoints.choose
          repeat_at = nil
          outcome = make_attempt(request, descriptor, attempt, endpoint, identity,
                                 [policy.attempt_timeout, remaining].min)
          case outcome
          when Transport::VerificationFailure
            # Never an endpoint failure, never a move (12.6.1). Once per call, a
            # chain failure may be a CA rotation this client has not seen:
            # refresh the bundle and repeat the attempt (spec 10.3).
            if outcome.kind == :chain && !refreshed
              refreshed = true
              if @source.refresh_bundle
                repeat_at = endpoint
                next
              end
            end
            raise TransportError.new("secinfra: transport: #{name}: #{endpoint.url}: #{outcome.message}",
                                     attempts: attempt, endpoint: endpoint.url,
                                     request_id: answered && Answers.request_id(answered))
          when Answer
            answered = outcome
            @endpoints.record(endpoint, failure: EndpointSet.endpoint_failure?(outcome.status))
            outcome.attempts = attempt
            outcome.endpoint = endpoint.url
            if (200..299).cover?(outcome.status) || (outcome.status == 304 && if_none_match)
              @budget.record_success
              return outcome
            end
            if outcome.status < 400
              raise InternalError.new(
                "secinfra: transport: #{name}: unexpected HTTP #{outcome.status} (the API answers 2xx, " \
                "or 304 to a conditional request)",
                status: outcome.status, request_id: Answers.request_id(outcome), attempts: attempt,
                endpoint: endpoint.url
              )
            end
            result = AttemptResponse.new(outcome.status, outcome.headers)
            answer = outcome
            failure = nil
          else # [AttemptFailure, exception]
            @endpoints.record(endpoint, failure: true)
            result, failure = outcome
            answer = nil
          end
          decision = Retry.decide(result, policy: policy, safe_to_repeat: descriptor.safe_to_repeat?,
                                          has_key: request.headers.key?(Request::IDEMPOTENCY_HEADER),
                                          attempt: attempt, remaining: deadline_at - @clock.monotonic,
                                          now: @clock.now, random: @random)
          decision = Retry.charge(decision, @budget)
          unless decision.retry
            raise Answers.decode_error(descriptor, answer: answer, failure: failure, decision: decision,
                                                   policy: policy, attempt: attempt, endpoint: endpoint.url,
                                                   answered: answered)
          end

          @clock.sleep(decision.delay)
          attempt += 1
        end
      end

      # One attempt over the transport, told to the observers (spec 14.2.1):
      # attempt_started, whose trace context goes on this attempt only
      # (14.3), then attempt_finished with the outcome's status and code.
      def make_attempt(request, descriptor, number, endpoint, identity, timeout)
        name = descriptor.full_name
        trace = @observers.attempt_started(name, number, endpoint.url, request.http_method)
        request.headers.delete(Observers::TRACEPARENT_HEADER)
        request.headers.delete(Observers::TRACESTATE_HEADER)
        request.headers.merge!(trace)
        begin
          outcome = @transport.exchange(request, endpoint: endpoint, mtls: descriptor.mtls?, identity: identity,
                                                 timeout: timeout)
        rescue StandardError => e
          @observers.attempt_finished(name, number, endpoint.url, status: nil,
                                                                  code: e.is_a?(Secinfra::Error) ? e.code : "internal")
          raise
        end
        status, code = if outcome.is_a?(Answer)
                         [outcome.status, attempt_code(outcome, request)]
                       else # a verification failure, or no answer
                         [nil, Observers::NO_ANSWER_CODE]
                       end
        @observers.attempt_finished(name, number, endpoint.url, status: status, code: code)
        outcome
      end

      # The error code of an answered attempt (nil: it succeeded), as the
      # call's error would have it (spec 11.1, 11.2).
      def attempt_code(answer, request)
        return nil if (200..299).cover?(answer.status)
        return nil if answer.status == 304 && request.headers.key?(Request::IF_NONE_MATCH_HEADER)
        return "internal" if answer.status < 400

        Answers.error_code(answer)
      end

      # The error of a call whose deadline left no time for attempt +attempt+.
      def deadline_passed(name, policy, attempt, endpoint, answered, why = nil)
        DeadlineExceeded.new(
          "secinfra: transport: #{name}: deadline of #{format("%g", policy.deadline)} s passed after " \
          "#{attempt - 1} attempts#{why}", retryable: true, attempts: attempt - 1, endpoint: endpoint&.url,
                                           request_id: answered && Answers.request_id(answered)
        )
      end

      # The snapshot an mTLS attempt presents, waited for until the deadline.
      # The deadline passing while a re-enrolment is still in flight is
      # DeadlineExceeded (spec 5.4.1); IdentityExpired comes only when the
      # source cannot or could not re-enrol (9.7.3, 11.3.4).
      #
      # @raise [DeadlineExceeded, IdentityExpired] with the attempts made so far
      def identity_for(name, policy, deadline_at, attempt, last_endpoint, answered)
        @source.ensure_identity(deadline_at)
      rescue DeadlineExceeded => e
        raise deadline_passed(name, policy, attempt, last_endpoint, answered,
                              " waiting for an identity (#{e.raw_message})")
      rescue IdentityExpired => e
        e.attempts = attempt - 1
        e.endpoint = last_endpoint&.url
        raise
      end

      # Drops the cache when the SPIFFE ID changed (spec 7.11.4): entries
      # hold what the old identity was allowed to see.
      def on_rotation(event)
        spiffe_id = event.identity&.spiffe_id
        changed = @lock.synchronize do
          previous = @spiffe_id
          @spiffe_id = spiffe_id if spiffe_id
          previous && spiffe_id && previous != spiffe_id
        end
        @cache.clear if changed
      end
    end
  end
end
