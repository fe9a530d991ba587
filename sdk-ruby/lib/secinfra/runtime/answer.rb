# frozen_string_literal: true

require "json"
require "net/http"

module Secinfra
  module Runtime
    # A complete HTTP answer (headers: lower-case names); +attempts+ is the
    # number of the attempt that got it, +endpoint+ the URL of the endpoint
    # it came from (both set by the pipeline).
    Answer = Struct.new(:status, :headers, :body, :attempts, :endpoint)

    # An answer's status, headers and body turned into the RPC's result or a
    # typed error (spec 2.5, 11): the one place that reads error envelopes.
    module Answers
      REQUEST_ID_HEADER = "request-id"
      # Retry decisions whose reason the error message adds to the server's
      # own message, when the server gave none.
      GAVE_UP_REASONS = %i[attempts_exhausted budget_exhausted deadline_exceeded retry_after_too_long
                           retry_after_past_deadline].freeze
      # Characters of a server's text quoted in an error message at most.
      QUOTED_CHARS = 200

      module_function

      # The 2xx body decoded as +response_class+.
      #
      # @param descriptor [RPC::MethodDescriptor]
      # @param answer [Answer]
      # @param response_class [Class<RPC::Message>]
      # @return [RPC::Message]
      # @raise [TransportError] when the body is not a valid +response_class+
      def decode_result(descriptor, answer, response_class)
        data = answer.body.nil? || answer.body.empty? ? {} : JSON.parse(answer.body)
        response_class.from_h(data)
      rescue JSON::ParserError, RPC::DecodeError => e
        raise TransportError.new(
          "secinfra: transport: #{descriptor.full_name}: the server's answer is not a valid " \
          "#{response_class.name.split("::").last}: #{e.message[0, QUOTED_CHARS]}",
          status: answer.status, request_id: request_id(answer), attempts: answer.attempts,
          endpoint: answer.endpoint
        )
      end

      # The error a call ends with after the retry rules gave up.
      #
      # @param descriptor [RPC::MethodDescriptor]
      # @param answer [Answer, nil] the last attempt's answer; nil when it got none
      # @param failure [Exception, nil] why the last attempt got no answer (kept as the cause)
      # @param decision [RetryDecision] why the call stops
      # @param policy [RetryPolicy] the call's settings
      # @param attempt [Integer] attempts made
      # @param endpoint [String, nil] the URL of the last attempt's endpoint (spec 12.8.2)
      # @return [Secinfra::Error]
      def decode_error(descriptor, answer:, failure:, decision:, policy:, attempt:, endpoint: nil, answered: nil)
        if answer.nil?
          return transport_error(descriptor, failure, decision, policy, attempt, endpoint,
                                 request_id: answered && request_id(answered))
        end

        envelope = envelope_of(answer.body)
        server_message = envelope["message"].is_a?(String) && !envelope["message"].empty? ? envelope["message"] : nil
        code = decision.code || error_code(answer, envelope)
        message = server_message || "secinfra: transport: #{descriptor.full_name}: HTTP #{answer.status}"
        if GAVE_UP_REASONS.include?(decision.reason) && !envelope["message"].is_a?(String)
          message = "#{message} (#{decision.message})"
        end
        error_class = case decision.code
                      when "rate_limited" then RateLimited
                      when "unavailable" then Unavailable
                      else Secinfra.error_class_for(code)
                      end
        request_id = request_id(answer) || (envelope["request_id"].is_a?(String) ? envelope["request_id"] : nil)
        details = envelope["details"].is_a?(Hash) ? envelope["details"] : {}
        error_class.new(message, code: code, status: answer.status, request_id: request_id,
                                 retryable: Retry.status_retryable?(answer.status, answer.headers,
                                                                    descriptor.safe_to_repeat?),
                                 retry_after: decision.retry_after, details: details, attempts: attempt,
                                 endpoint: endpoint)
      end

      # The code of an error answer: its envelope's, else the status's (spec 11.1, 11.2).
      #
      # @param answer [Answer] a 4xx or 5xx answer
      # @return [String]
      def error_code(answer, envelope = envelope_of(answer.body))
        code = envelope["code"]
        code.is_a?(String) && !code.empty? ? code : Secinfra.code_for_status(answer.status)
      end

      # The answer's Request-Id header (spec 2.5.1).
      def request_id(answer) = answer.headers[REQUEST_ID_HEADER]

      # A call that got no usable answer: TransportError or DeadlineExceeded,
      # with the last attempt's failure as its cause; the message names the
      # endpoint (spec 12.8.2). +request_id+ is the Request-Id of the call's
      # last answered attempt, if an earlier one was answered (spec 11.5).
      def transport_error(descriptor, failure, decision, policy, attempt, endpoint = nil, request_id: nil)
        name = descriptor.full_name
        name = "#{name}: #{endpoint}" if endpoint
        error_class = decision.reason == :deadline_exceeded ? DeadlineExceeded : TransportError
        what = describe(failure)
        message = if error_class == DeadlineExceeded
                    "secinfra: transport: #{name}: deadline of #{format("%g", policy.deadline)} s passed: #{what}"
                  else
                    "secinfra: transport: #{name}: #{what} (#{decision.message})"
                  end
        retryable = decision.reason != :unsafe_to_resend
        with_cause(error_class.new(message, retryable: retryable, attempts: attempt, endpoint: endpoint,
                                            request_id: request_id), failure)
      end

      # +error+ raised with +cause+ as its cause (Ruby keeps it as Exception#cause).
      def with_cause(error, cause)
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

      # The error envelope's +error+ object, or {} when the body holds none (spec 11.1).
      def envelope_of(body)
        doc = JSON.parse(body.to_s)
        doc.is_a?(Hash) && doc["error"].is_a?(Hash) ? doc["error"] : {}
      rescue JSON::ParserError
        {}
      end

      def describe(failure)
        case failure
        when nil then "no answer"
        when Transport::AttemptTimeout, Net::OpenTimeout, Net::ReadTimeout, Net::WriteTimeout then "the attempt timed out"
        else "connection failed (#{failure.class}: #{failure.message[0, QUOTED_CHARS]})"
        end
      end
    end
  end
end
