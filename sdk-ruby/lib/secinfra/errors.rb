# frozen_string_literal: true

module Secinfra
  # The base of every error the SDK raises (spec 11.3). The tree:
  #
  #   Secinfra::Error                 code, message, status, request_id, retryable,
  #   |                               retry_after, attempts, endpoint, details, cause
  #   +-- ApiError                    the server answered with an error status
  #   |   +-- InvalidArgument         invalid_argument, payload_too_large,
  #   |   |                           method_not_allowed, idempotency_key_reused
  #   |   +-- Unauthenticated         unauthenticated
  #   |   +-- PermissionDenied        permission_denied
  #   |   +-- NotFound                not_found
  #   |   +-- Conflict                already_exists, conflict
  #   |   +-- FailedPrecondition      failed_precondition
  #   |   +-- RateLimited             rate_limited
  #   |   +-- Unavailable             unavailable, deadline_exceeded (from the server)
  #   |   +-- InternalError           internal, unimplemented, unknown codes
  #   +-- TransportError              no usable answer (connection, TLS, verification,
  #   |   |                           attempt timeout, undecodable 2xx)
  #   |   +-- DeadlineExceeded        the call's deadline passed
  #   +-- IdentityExpired             the certificate expired and could not be renewed
  #   |                               or re-enrolled
  #   +-- MTLS::PeerRefused           an application's mTLS peer failed a check in the
  #                                   handshake (unauthenticated; permission_denied when
  #                                   the authorizer refused); see mtls/peer_refused.rb
  #
  # The underlying error is kept as Ruby's +cause+ (raise inside +rescue+).
  # Messages the SDK makes start with +secinfra: <component>: +; no message
  # holds a secret value, key, join token or JWT.
  class Error < StandardError
    # @return [String] the wire error code (+not_found+, +identity_expired+, ...)
    attr_reader :code
    # @return [Integer, nil] HTTP status of the last answered attempt
    attr_reader :status
    # @return [String, nil] the server's Request-Id of the last answered attempt
    attr_reader :request_id
    # @return [Float, nil] seconds from the last response's Retry-After
    attr_reader :retry_after
    # @return [Hash] the error envelope's +details+ (empty when none)
    attr_reader :details
    # @return [Integer] HTTP attempts the call made (0 when none)
    attr_accessor :attempts
    # @return [String, nil] the URL of the endpoint of the call's last attempt
    #   (nil when it made none, spec 12.8.2)
    attr_accessor :endpoint

    # The code an error of this class has when none is given.
    DEFAULT_CODE = "internal"

    # @param message [String]
    # @param code [String, nil] defaults to the class's code
    # @param status [Integer, nil]
    # @param request_id [String, nil]
    # @param retryable [Boolean]
    # @param retry_after [Numeric, nil]
    # @param details [Hash, nil]
    # @param attempts [Integer]
    # @param endpoint [String, nil]
    def initialize(message = nil, code: nil, status: nil, request_id: nil, retryable: false,
                   retry_after: nil, details: nil, attempts: 0, endpoint: nil)
      super(message)
      @code = code || self.class::DEFAULT_CODE
      @status = status
      @request_id = request_id
      @retryable = retryable
      @retry_after = retry_after&.to_f
      @details = details || {}
      @attempts = attempts
      @endpoint = endpoint
    end

    # Whether the same call may succeed if made again later (spec 11.5.2).
    def retryable? = @retryable

    # @return [Boolean] same as {#retryable?}
    def retryable = @retryable

    # The message plus the request id, so logs can be matched with the server's.
    def to_s
      text = super
      request_id ? "#{text} (request id #{request_id})" : text
    end

    # The message without the request id suffix.
    def raw_message
      method(:to_s).super_method.call
    end

    def inspect
      "#<#{self.class.name} code=#{code} status=#{status.inspect} attempts=#{attempts} #{raw_message.inspect}>"
    end
  end

  # The server answered with an error status.
  class ApiError < Error; end

  # +invalid_argument+, +payload_too_large+, +method_not_allowed+, +idempotency_key_reused+.
  class InvalidArgument < ApiError
    DEFAULT_CODE = "invalid_argument"
  end

  # +unauthenticated+: no valid client certificate, or a spent join token.
  class Unauthenticated < ApiError
    DEFAULT_CODE = "unauthenticated"
  end

  # +permission_denied+: the identity may not do this.
  class PermissionDenied < ApiError
    DEFAULT_CODE = "permission_denied"
  end

  # +not_found+.
  class NotFound < ApiError
    DEFAULT_CODE = "not_found"
  end

  # +already_exists+ or +conflict+.
  class Conflict < ApiError
    DEFAULT_CODE = "conflict"
  end

  # +failed_precondition+ (for example a check-and-set on the wrong version).
  class FailedPrecondition < ApiError
    DEFAULT_CODE = "failed_precondition"
  end

  # +rate_limited+; see {Error#retry_after}.
  class RateLimited < ApiError
    DEFAULT_CODE = "rate_limited"
  end

  # +unavailable+, or +deadline_exceeded+ answered by the server.
  class Unavailable < ApiError
    DEFAULT_CODE = "unavailable"
  end

  # +internal+, +unimplemented+ and codes this SDK does not know.
  class InternalError < ApiError
    DEFAULT_CODE = "internal"
  end

  # No usable answer: connection refused or reset, TLS or server verification
  # failure, attempt timeout, or a 2xx whose body does not decode.
  class TransportError < Error
    DEFAULT_CODE = "unavailable"
  end

  # The call's deadline passed (code +deadline_exceeded+).
  class DeadlineExceeded < TransportError
    DEFAULT_CODE = "deadline_exceeded"
  end

  # The client's certificate expired and could not be renewed or re-enrolled
  # (code +identity_expired+); no request was sent.
  class IdentityExpired < Error
    DEFAULT_CODE = "identity_expired"
  end

  # Error types by wire code (spec 11.3); unknown codes are InternalError.
  ERROR_TYPES = {
    "invalid_argument" => InvalidArgument,
    "payload_too_large" => InvalidArgument,
    "method_not_allowed" => InvalidArgument,
    "idempotency_key_reused" => InvalidArgument,
    "unauthenticated" => Unauthenticated,
    "permission_denied" => PermissionDenied,
    "not_found" => NotFound,
    "already_exists" => Conflict,
    "conflict" => Conflict,
    "failed_precondition" => FailedPrecondition,
    "rate_limited" => RateLimited,
    "unavailable" => Unavailable,
    "deadline_exceeded" => Unavailable,
    "internal" => InternalError,
    "unimplemented" => InternalError
  }.freeze

  # Codes for answers without an envelope (spec 11.2).
  STATUS_CODES = {
    400 => "invalid_argument", 401 => "unauthenticated", 403 => "permission_denied",
    404 => "not_found", 405 => "method_not_allowed", 408 => "unavailable", 409 => "conflict",
    412 => "failed_precondition", 413 => "payload_too_large", 422 => "idempotency_key_reused",
    429 => "rate_limited", 501 => "unimplemented", 502 => "unavailable", 503 => "unavailable",
    504 => "deadline_exceeded"
  }.freeze

  # The error class for a wire code.
  #
  # @param code [String]
  # @return [Class<ApiError>]
  def self.error_class_for(code)
    ERROR_TYPES.fetch(code, InternalError)
  end

  # The code for an HTTP status without an error envelope (spec 11.2).
  #
  # @param status [Integer]
  # @return [String]
  def self.code_for_status(status)
    STATUS_CODES.fetch(status) { status >= 500 ? "internal" : "invalid_argument" }
  end
end
