# frozen_string_literal: true

require "logger"
require "openssl"

module Secinfra
  # An {Identity::Source} with a fixed identity and bundle (files of another
  # process, the admin identity, tests): never renewed; once expired, mTLS
  # calls fail with {IdentityExpired}.
  class StaticIdentity
    include Identity::Source

    attr_reader :server_id

    # @param bundle [TrustBundle]
    # @param identity [X509Identity, nil] nil: only auth-NONE calls work
    # @param server_id [String, nil] default: from the bundle's trust domain
    def initialize(bundle, identity = nil, server_id: nil, clock: Runtime::SystemClock.new,
                   logger: Logger.new($stderr, level: Logger::WARN))
      @bundle = bundle
      @identity = identity
      @server_id = server_id || Identity.server_id_for(bundle)
      @clock = clock
      @events = EventDispatcher.new(logger)
    end

    # Loads PEM files; the key stays in memory once read.
    #
    # @return [StaticIdentity]
    def self.from_files(bundle_file:, cert_file: nil, key_file: nil, server_id: nil)
      bundle = Identity.load_bundle(File.read(bundle_file))
      identity = nil
      if cert_file && key_file
        key = OpenSSL::PKey.read(File.read(key_file))
        identity = Identity.parse_identity(File.read(cert_file), key, received_at: Time.now.utc)
      end
      new(bundle, identity, server_id: server_id)
    end

    # @return [X509Identity, nil]
    def identity = @identity

    # @return [TrustBundle]
    def bundle = @bundle

    # The identity for an mTLS call.
    #
    # @raise [IdentityExpired]
    def ensure_identity(_deadline_at = nil)
      raise IdentityExpired, "secinfra: identity: this client has no identity; enrol first" if @identity.nil?
      if @clock.now >= @identity.not_after
        raise IdentityExpired,
              "secinfra: identity: the certificate for #{@identity.spiffe_id} expired at " \
              "#{@identity.not_after.iso8601} and a static identity cannot renew; load a current one"
      end

      @identity
    end

    # A static bundle never changes.
    def refresh_bundle = false

    def subscribe(callable) = @events.subscribe(callable)

    def close = @events.close
  end
end
