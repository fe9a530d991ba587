# frozen_string_literal: true

module Secinfra
  # What a call's start tells observers (spec 14.2.1).
  #
  # @!attribute [r] rpc
  #   @return [String] +secinfra.v1.SecretsService/GetSecret+
  # @!attribute [r] idempotency
  #   @return [Symbol] +:read_only+, +:idempotent+ or +:non_idempotent+ (spec 1.3)
  CallStarted = Struct.new(:rpc, :idempotency, keyword_init: true) do
    def initialize(**)
      super
      freeze
    end
  end

  # What the cache answered for a cacheable call (spec 7.1, 14.2.1).
  #
  # @!attribute [r] rpc
  #   @return [String]
  # @!attribute [r] result
  #   @return [Symbol] +:hit+ (a fresh entry answers, no request), +:miss+ (no
  #     entry) or +:revalidate+ (an entry the request that follows revalidates)
  CacheLookup = Struct.new(:rpc, :result, keyword_init: true) do
    def initialize(**)
      super
      freeze
    end
  end

  # One attempt about to be sent (spec 14.2.1).
  #
  # @!attribute [r] rpc
  #   @return [String]
  # @!attribute [r] attempt
  #   @return [Integer] its number, as in +Secinfra-Attempt+ (1-based); the
  #     repeat after a trust-bundle refresh has the same number (spec 14.2.3)
  # @!attribute [r] endpoint
  #   @return [String] the endpoint's URL, as configured
  # @!attribute [r] http_method
  #   @return [String] +GET+, +POST+, ...
  AttemptStarted = Struct.new(:rpc, :attempt, :endpoint, :http_method, keyword_init: true) do
    def initialize(**)
      super
      freeze
    end
  end

  # How one attempt ended (spec 14.2.1).
  #
  # @!attribute [r] rpc
  #   @return [String]
  # @!attribute [r] attempt
  #   @return [Integer]
  # @!attribute [r] endpoint
  #   @return [String] the endpoint's URL, as configured
  # @!attribute [r] status
  #   @return [Integer, nil] the HTTP status; nil when the attempt got no answer
  # @!attribute [r] code
  #   @return [String, nil] nil when the attempt succeeded; else the API
  #     error's code, or +unavailable+ when it got no answer (spec 11.3)
  AttemptFinished = Struct.new(:rpc, :attempt, :endpoint, :status, :code, keyword_init: true) do
    def initialize(**)
      super
      freeze
    end
  end

  # How a call ended (spec 14.2.1).
  #
  # @!attribute [r] rpc
  #   @return [String]
  # @!attribute [r] ok
  #   @return [Boolean]
  # @!attribute [r] code
  #   @return [String, nil] the error's code (spec 11.3); nil when ok
  # @!attribute [r] meta
  #   @return [ResponseMeta] a frozen copy of the call's metadata (spec 7.7);
  #     for a failed call the error's attempts, status, request id and endpoint
  CallFinished = Struct.new(:rpc, :ok, :code, :meta, keyword_init: true) do
    def initialize(**)
      super
      freeze
    end
  end

  # W3C trace context an observer returns from {Observer#attempt_started}
  # for that attempt (spec 14.3). A Hash with +"traceparent"+ and
  # +"tracestate"+ keys (as a propagator's carrier holds them) is taken as
  # well.
  #
  # @!attribute [r] traceparent
  #   @return [String] +00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>+
  # @!attribute [r] tracestate
  #   @return [String, nil]
  TraceContext = Struct.new(:traceparent, :tracestate, keyword_init: true) do
    def initialize(traceparent:, tracestate: nil)
      super
      freeze
    end
  end

  # The base class of observers (spec 14): every notification is a no-op,
  # so a subclass defines only the ones it needs. Any object that answers
  # some of these methods is an observer too (duck typing); register them
  # with +Secinfra::Client.new(..., observers: [...])+ (or +enrol+,
  # +from_files+), called in that order.
  #
  #   class SlowCalls < Secinfra::Observer
  #     def call_finished(call)
  #       warn "#{call.rpc}: #{call.code}" unless call.ok
  #     end
  #   end
  #
  # Notifications are made synchronously, on the thread that makes the call
  # (the client's rotation thread for its own enrolment, renewal and bundle
  # refresh calls): an observer must be thread-safe and quick. Whatever an
  # observer raises (a StandardError) is logged, once per observer and kind,
  # and changes nothing about the call (spec 14.1.3). The values it gets are
  # frozen and hold no secret (spec 14.2.5).
  class Observer
    # A call starts (before any cache lookup or attempt).
    #
    # @param call [CallStarted]
    def call_started(call); end

    # The cache answered a cacheable call (only when the call uses the cache).
    #
    # @param lookup [CacheLookup]
    def cache(lookup); end

    # An attempt is about to be sent.
    #
    # @param attempt [AttemptStarted]
    # @return [TraceContext, Hash, nil] trace context for this attempt only
    #   (spec 14.3.1); the first valid one an observer returns is sent
    def attempt_started(attempt); end

    # An attempt got an answer, or none.
    #
    # @param attempt [AttemptFinished]
    def attempt_finished(attempt); end

    # A call ended, exactly once per call, also when it failed before its first attempt.
    #
    # @param call [CallFinished]
    def call_finished(call); end
  end
end
