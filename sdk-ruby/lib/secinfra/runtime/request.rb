# frozen_string_literal: true

require "json"
require "securerandom"
require "uri"

module Secinfra
  module Runtime
    # One request as it goes on the wire: verb, path (query included),
    # headers and JSON body (nil for GET and DELETE). The pipeline sets the
    # Secinfra-Attempt header per attempt.
    EncodedRequest = Struct.new(:http_method, :path, :headers, :body, keyword_init: true)

    # The URL, query, headers and JSON body of a request, from its
    # descriptor (spec 2.2-2.4). Pure: the same inputs give the same
    # request, apart from a fresh Idempotency-Key.
    module Request
      ATTEMPT_HEADER = "Secinfra-Attempt"
      IDEMPOTENCY_HEADER = "Idempotency-Key"
      IF_NONE_MATCH_HEADER = "If-None-Match"
      # Verbs whose fields travel in the query, not a body (spec 2.3.1).
      QUERY_VERBS = %w[GET DELETE].freeze
      # Characters kept as they are in a path segment (RFC 3986 unreserved) ...
      SEGMENT_SAFE = /[A-Za-z0-9\-._~]/
      # ... and in a multi-segment variable (+{name=**}+), which keeps its slashes.
      MULTI_SEGMENT_SAFE = %r{[A-Za-z0-9\-._~/]}

      module_function

      # @param descriptor [RPC::MethodDescriptor]
      # @param request_json [Hash] the request's wire JSON form
      # @param base_path [String] the server URL's path ("" or "/prefix")
      # @param user_agent [String]
      # @param idempotency_key [String, nil] the caller's key; nil: a fresh UUIDv4
      #   (sent only on calls that are not read-only, spec 2.4.3)
      # @param if_none_match [String, nil] an ETag that makes the request conditional
      # @return [EncodedRequest]
      def encode_request(descriptor, request_json, base_path:, user_agent:, idempotency_key: nil, if_none_match: nil)
        path, body = path_and_body(descriptor, request_json, base_path)
        headers = { "User-Agent" => user_agent, "Accept" => "application/json" }
        headers["Content-Type"] = "application/json" if body
        headers[IDEMPOTENCY_HEADER] = idempotency_key || SecureRandom.uuid unless descriptor.read_only?
        headers[IF_NONE_MATCH_HEADER] = if_none_match if if_none_match
        EncodedRequest.new(http_method: descriptor.http_method, path: path, headers: headers, body: body)
      end

      # +secinfra-ruby/<version> (ruby/<version>)+ (spec 2.4.1).
      def user_agent
        engine = defined?(RUBY_ENGINE) ? RUBY_ENGINE : "ruby"
        version = engine == "ruby" ? RUBY_VERSION : (defined?(RUBY_ENGINE_VERSION) ? RUBY_ENGINE_VERSION : RUBY_VERSION)
        "secinfra-ruby/#{Secinfra::VERSION} (#{engine.tr(" /()", "")}/#{version.tr(" /()", "")})"
      end

      # The path (path variables filled in, query appended) and the body.
      def path_and_body(descriptor, request_json, base_path)
        path = descriptor.path.dup
        descriptor.path_params.each do |name|
          value = request_json.fetch(name, "").to_s
          multi = "{#{name}=**}"
          path = if path.include?(multi)
                   path.sub(multi) { escape_path(value, MULTI_SEGMENT_SAFE) }
                 else
                   path.sub("{#{name}}") { escape_path(value, SEGMENT_SAFE) }
                 end
        end
        path = base_path + path
        if QUERY_VERBS.include?(descriptor.http_method)
          pairs = descriptor.query_params.flat_map do |name|
            next [] unless request_json.key?(name)

            Array(request_json[name]).map { |v| [name, query_value(v)] }
          end
          path += "?#{URI.encode_www_form(pairs)}" unless pairs.empty?
          return [path, nil]
        end
        # Spec 2.3.5 with 2.3.3: an empty repeated field is absent from the
        # message, so from its body too.
        body = request_json.reject { |k, v| descriptor.path_params.include?(k) || v == [] }
        [path, JSON.generate(body)]
      end

      # Percent-encodes every byte outside +allowed+, upper-case hex, no
      # normalisation (spec 2.2.5).
      def escape_path(value, allowed)
        value.b.each_char.map { |c| c.match?(allowed) ? c : format("%%%02X", c.ord) }.join
      end

      def query_value(value)
        case value
        when true then "true"
        when false then "false"
        else value.to_s
        end
      end
    end
  end
end
