# frozen_string_literal: true

require "logger"

module Secinfra
  module Runtime
    # A client's observers (spec 14), as the call pipeline tells them: each
    # notification goes to every observer that answers its method, in the
    # order registered; a StandardError an observer raises is logged once
    # per observer and kind and goes no further (14.1.3). With no observer
    # no value is made at all. Thread-safe.
    class Observers
      # The notifications, in the order of a call (spec 14.2.1).
      KINDS = %i[call_started cache attempt_started attempt_finished call_finished].freeze
      # The results a cache lookup reports.
      CACHE_RESULTS = %i[hit miss revalidate].freeze
      # The trace context headers, the only ones an observer may add (spec 14.3.1).
      TRACEPARENT_HEADER = "traceparent"
      TRACESTATE_HEADER = "tracestate"
      # A traceparent the client sends (spec 14.3.2) ...
      TRACEPARENT = /\A00-(?<trace_id>[0-9a-f]{32})-(?<parent_id>[0-9a-f]{16})-[0-9a-f]{2}\z/
      # ... and a tracestate: visible ASCII and spaces (never CR or LF), at
      # most the 512 characters W3C Trace Context asks propagators to keep.
      TRACESTATE = /\A[\x20-\x7e]{1,512}\z/
      # The code of an attempt that got no answer (spec 11.3: TransportError).
      NO_ANSWER_CODE = "unavailable"

      # The headers of the trace context an observer returned, when valid
      # (spec 14.3.2): +{}+ for nil, anything that is not trace context, or a
      # traceparent that does not match or has an all-zero trace or parent
      # id; a tracestate that is not a valid header value is dropped alone.
      #
      # @param returned [TraceContext, Hash, Object, nil] what attempt_started returned
      # @return [Hash{String => String}] +traceparent+ and maybe +tracestate+, or empty
      def self.trace_headers(returned)
        traceparent, tracestate = case returned
                                  when TraceContext then [returned.traceparent, returned.tracestate]
                                  when Hash then [header_in(returned, TRACEPARENT_HEADER),
                                                  header_in(returned, TRACESTATE_HEADER)]
                                  end
        return {} unless valid_traceparent?(traceparent)

        headers = { TRACEPARENT_HEADER => traceparent }
        headers[TRACESTATE_HEADER] = tracestate if tracestate.is_a?(String) && tracestate.match?(TRACESTATE)
        headers
      end

      # Whether +value+ is a traceparent the client may send (spec 14.3.2).
      def self.valid_traceparent?(value)
        match = value.is_a?(String) && TRACEPARENT.match(value)
        return false unless match

        match[:trace_id].count("0") < 32 && match[:parent_id].count("0") < 16
      end

      # A header of a carrier Hash: String or Symbol key, any case.
      def self.header_in(carrier, name)
        carrier.each { |k, v| return v if (k.is_a?(String) || k.is_a?(Symbol)) && k.to_s.casecmp?(name) }
        nil
      end

      # @param observers [Array<#call_started, #cache, #attempt_started, #attempt_finished, #call_finished>]
      # @param logger [Logger] where failures are logged
      # @raise [ArgumentError] when +observers+ is not an Array, or holds an
      #   object that answers none of {KINDS}
      def initialize(observers = [], logger: Logger.new($stderr, level: Logger::WARN))
        unless observers.is_a?(Array)
          raise ArgumentError, "secinfra: observers: observers must be an Array, got #{observers.class}"
        end

        observers.each_with_index do |o, i|
          next if KINDS.any? { |kind| o.respond_to?(kind) }

          raise ArgumentError, "secinfra: observers: observers[#{i}] (#{o.class}) answers none of #{KINDS.join(", ")}"
        end
        @observers = observers.dup.freeze
        @logger = logger
        @logged = {}
        @lock = Mutex.new
      end

      # Whether there is no observer (then the pipeline skips every notification).
      def empty? = @observers.empty?

      # @param descriptor [RPC::MethodDescriptor]
      def call_started(descriptor)
        return if empty?

        notify(:call_started, CallStarted.new(rpc: descriptor.full_name, idempotency: descriptor.idempotency))
      end

      # @param rpc [String]
      # @param result [Symbol] one of {CACHE_RESULTS}
      def cache(rpc, result)
        return if empty?

        notify(:cache, CacheLookup.new(rpc: rpc, result: result))
      end

      # Tells every observer and returns the trace context headers to send
      # on this attempt: the first valid trace context returned (spec 14.3.2).
      #
      # @return [Hash{String => String}] empty when none
      def attempt_started(rpc, attempt, endpoint, http_method)
        return {} if empty?

        value = AttemptStarted.new(rpc: rpc, attempt: attempt, endpoint: endpoint, http_method: http_method)
        chosen = nil
        @observers.each do |o|
          returned = deliver(o, :attempt_started, value)
          chosen = Observers.trace_headers(returned) if chosen.nil? || chosen.empty?
        end
        chosen || {}
      end

      # @param status [Integer, nil] nil: no answer
      # @param code [String, nil] nil: the attempt succeeded
      def attempt_finished(rpc, attempt, endpoint, status:, code:)
        return if empty?

        notify(:attempt_finished,
               AttemptFinished.new(rpc: rpc, attempt: attempt, endpoint: endpoint, status: status, code: code))
      end

      # @param meta [ResponseMeta, nil] the call's metadata (nil: made from +error+)
      # @param error [Exception, nil] why the call failed
      def call_finished(rpc, meta: nil, error: nil)
        return if empty?

        meta ||= Observers.failure_meta(rpc, error)
        code = if error.nil? then nil
               elsif error.is_a?(Secinfra::Error) then error.code
               else Secinfra::Error::DEFAULT_CODE
               end
        notify(:call_finished, CallFinished.new(rpc: rpc, ok: error.nil?, code: code, meta: meta.dup.freeze))
      end

      # The metadata of a failed call: what its error says.
      def self.failure_meta(rpc, error)
        sdk_error = error.is_a?(Secinfra::Error) ? error : nil
        ResponseMeta.new(rpc: rpc, request_id: sdk_error&.request_id, attempts: sdk_error&.attempts || 0,
                         from_cache: false, stale: false, status: sdk_error&.status, endpoint: sdk_error&.endpoint)
      end

      def inspect = "#<Secinfra::Runtime::Observers #{@observers.map { |o| o.class.name }.join(", ")}>"
      alias to_s inspect

      private

      def notify(kind, value)
        @observers.each { |o| deliver(o, kind, value) }
        nil
      end

      # Calls +observer+'s +kind+ method; what it raises is logged, once per
      # observer and kind, and dropped.
      def deliver(observer, kind, value)
        return nil unless observer.respond_to?(kind)

        observer.public_send(kind, value)
      rescue StandardError => e
        key = [observer.__id__, kind]
        first = @lock.synchronize { @logged.key?(key) ? false : (@logged[key] = true) }
        if first
          @logger.warn("secinfra: observers: #{observer.class} failed in #{kind} (logged once per observer and " \
                       "kind; the call goes on): #{e.class}: #{e.message}")
        end
        nil
      end
    end
  end
end
