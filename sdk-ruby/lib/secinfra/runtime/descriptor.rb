# frozen_string_literal: true

module Secinfra
  module Runtime
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
        freeze
      end

      # Whether the caller needs the admin relation (documentation only).
      def admin? = @admin

      # +secinfra.v1.SecretsService/GetSecret+.
      def full_name = "#{@service}/#{@name}"

      # READ_ONLY or IDEMPOTENT (spec 1.3).
      def safe_to_repeat? = @idempotency != :non_idempotent

      def read_only? = @idempotency == :read_only

      def mtls? = @auth != :none

      def cacheable? = !@cache.nil?
    end
  end
end
