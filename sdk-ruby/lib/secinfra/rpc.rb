# frozen_string_literal: true

require_relative "rpc/wire"
require_relative "rpc/message"

module Secinfra
  # The contract generated code calls (docs/sdk/floor-plan.md, "rpc"): the
  # descriptor of one RPC, the one {Invoker} interface, the per-call
  # {CallOptions}, and the message base class ({Message}, rpc/message.rb).
  # Generated clients build a request, hand it with its descriptor to an
  # Invoker and get the decoded answer back; they depend on nothing else, so
  # the runtime behind the Invoker (Secinfra::Runtime) can change freely.
  module RPC
    # How an RPC's answers may be cached (spec 7.1).
    CachePolicy = Struct.new(:resource, :key_field, keyword_init: true) do
      def initialize(resource:, key_field: "")
        super
        freeze
      end
    end

    # Which cache entries an RPC's success drops (spec 7.9).
    Invalidation = Struct.new(:resource, :key_field, keyword_init: true) do
      def initialize(resource:, key_field: "")
        super
        freeze
      end
    end

    # What the API definition says about one RPC: HTTP binding, idempotency,
    # auth, cache policy, invalidation. Generated code makes one per RPC; the
    # runtime's behaviour depends only on it and the request.
    class MethodDescriptor
      IDEMPOTENCY = %i[read_only idempotent non_idempotent].freeze
      AUTH = %i[mtls none].freeze

      attr_reader :service, :name, :http_method, :path, :path_params, :query_params,
                  :body_fields, :idempotency, :auth, :cache, :invalidates

      def initialize(service:, name:, http_method:, path:, path_params:, query_params:, body_fields:,
                     idempotency:, auth:, cache:, invalidates:, admin:)
        raise ArgumentError, "idempotency #{idempotency}" unless IDEMPOTENCY.include?(idempotency)
        raise ArgumentError, "auth #{auth}" unless AUTH.include?(auth)

        @service = service
        @name = name
        @http_method = http_method
        @path = path
        @path_params = path_params
        @query_params = query_params
        @body_fields = body_fields
        @idempotency = idempotency
        @auth = auth
        @cache = cache
        @invalidates = invalidates
        @admin = admin
        @full_name = "#{service}/#{name}".freeze
        freeze
      end

      # Whether the caller needs the admin relation (documentation only).
      def admin? = @admin

      # +secinfra.v1.SecretsService/GetSecret+ (frozen).
      attr_reader :full_name

      # READ_ONLY or IDEMPOTENT (spec 1.3).
      def safe_to_repeat? = @idempotency != :non_idempotent

      def read_only? = @idempotency == :read_only

      def mtls? = @auth != :none

      def cacheable? = !@cache.nil?
    end

    # The one interface generated service clients call. The SDK's
    # implementation is Secinfra::Runtime::CallPipeline; a test may hand a
    # generated client any object that includes this module and answers
    # {#invoke} (a recorder, a fake).
    module Invoker
      # Makes one RPC call: encodes +request+ as +descriptor+ says, applies
      # the client's policies (retries, cache, identity) with +options+ laid
      # over them, and decodes the answer.
      #
      # @param descriptor [MethodDescriptor]
      # @param request [Message]
      # @param response_class [Class<Message>]
      # @param options [CallOptions, nil]
      # @return [Message] an instance of +response_class+
      # @raise [Secinfra::Error] on any failure
      def invoke(descriptor, request, response_class, options)
        raise NotImplementedError,
              "secinfra: rpc: #{self.class} includes Secinfra::RPC::Invoker but does not define invoke " \
              "(called for #{descriptor.full_name})"
      end
    end

    # Per-call overrides of the client's settings (spec 1.4), also reachable
    # as +Secinfra::CallOptions+. Every field left nil keeps the client's
    # value; invalid values are refused here, naming the setting (spec 1.4.4).
    #
    #   client.secrets.get_secret(name: "app/db",
    #                             call_options: Secinfra::CallOptions.new(deadline: 2, use_cache: false))
    class CallOptions
      # Settings a call can override.
      FIELDS = %i[max_attempts deadline attempt_timeout base_backoff max_backoff max_retry_after
                  idempotency_key use_cache revalidate].freeze
      # What a caller-supplied Idempotency-Key may hold (spec 4.4.2).
      IDEMPOTENCY_KEY = /\A[\x21-\x7e]{1,255}\z/

      attr_reader(*FIELDS)

      # @param max_attempts [Integer, nil] attempts in all (>= 1)
      # @param deadline [Numeric, nil] seconds for the whole call (> 0)
      # @param attempt_timeout [Numeric, nil] seconds per attempt (> 0)
      # @param base_backoff [Numeric, nil] seconds (>= 0)
      # @param max_backoff [Numeric, nil] seconds (>= 0)
      # @param max_retry_after [Numeric, nil] seconds (>= 0)
      # @param idempotency_key [String, nil] sent verbatim instead of a fresh UUID
      # @param use_cache [Boolean, nil] false: neither read nor store cache entries
      # @param revalidate [Boolean, nil] true: a cacheable call reaches the server even
      #   when a fresh entry is cached, conditional on that entry's ETag (a 304 answers
      #   with the cached value), and a failure is never answered from a stale entry
      #   (the client's own trust-bundle refreshes, spec 7.12.2 and 10.2.2)
      # @raise [ArgumentError] on an invalid value, naming the setting
      def initialize(max_attempts: nil, deadline: nil, attempt_timeout: nil, base_backoff: nil,
                     max_backoff: nil, max_retry_after: nil, idempotency_key: nil, use_cache: nil, revalidate: nil)
        self.class.check_retry_settings(max_attempts: max_attempts, deadline: deadline,
                                        attempt_timeout: attempt_timeout, base_backoff: base_backoff,
                                        max_backoff: max_backoff, max_retry_after: max_retry_after)
        unless idempotency_key.nil? || (idempotency_key.is_a?(String) && idempotency_key.match?(IDEMPOTENCY_KEY))
          raise Secinfra::InvalidArgument.new(
            "secinfra: idempotency: idempotency_key must be 1 to 255 visible ASCII characters",
            code: "invalid_argument"
          )
        end
        { use_cache: use_cache, revalidate: revalidate }.each do |name, value|
          next if value.nil? || value == true || value == false

          raise ArgumentError, "secinfra: cache: #{name} must be true, false or nil"
        end

        @max_attempts = max_attempts
        @deadline = deadline&.to_f
        @attempt_timeout = attempt_timeout&.to_f
        @base_backoff = base_backoff&.to_f
        @max_backoff = max_backoff&.to_f
        @max_retry_after = max_retry_after&.to_f
        @idempotency_key = idempotency_key
        @use_cache = use_cache
        @revalidate = revalidate
        freeze
      end

      # Checks retry settings (nil = not given) as spec 1.4.4 asks; the
      # client's own settings (Secinfra::Runtime::RetryPolicy) are held to the
      # same rules.
      #
      # @raise [ArgumentError] naming the first invalid setting
      def self.check_retry_settings(max_attempts: nil, base_backoff: nil, max_backoff: nil, max_retry_after: nil,
                                    deadline: nil, attempt_timeout: nil)
        unless max_attempts.nil? || (max_attempts.is_a?(Integer) && max_attempts >= 1)
          raise ArgumentError, "secinfra: retry: max_attempts must be an integer >= 1, got #{max_attempts.inspect}"
        end

        { base_backoff: base_backoff, max_backoff: max_backoff, max_retry_after: max_retry_after }.each do |n, v|
          next if v.nil?
          next if v.is_a?(Numeric) && v.to_f.finite? && v >= 0

          raise ArgumentError, "secinfra: retry: #{n} must be a finite number >= 0, got #{v.inspect}"
        end
        { deadline: deadline, attempt_timeout: attempt_timeout }.each do |n, v|
          next if v.nil?
          next if v.is_a?(Numeric) && v.to_f.finite? && v.positive?

          raise ArgumentError, "secinfra: retry: #{n} must be a finite number > 0, got #{v.inspect}"
        end
      end

      def inspect
        set = FIELDS.filter_map { |f| (v = public_send(f)).nil? ? nil : "#{f}=#{v.inspect}" }
        "#<Secinfra::CallOptions #{set.join(", ")}>"
      end
    end
  end

  # The per-call options users pass as +call_options:+ (the name the guide uses).
  CallOptions = RPC::CallOptions
end
