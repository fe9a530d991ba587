# frozen_string_literal: true

require "openssl"

module Secinfra
  module Identity
    # NotBefore backdating the server applies (spec 9.1.2).
    NOT_BEFORE_BACKDATING = 60.0
    # One PEM certificate block.
    PEM_CERT = /-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----/m

    module_function

    # The certificates of a PEM text.
    #
    # @return [Array<OpenSSL::X509::Certificate>]
    def parse_pem_certificates(text)
      text.to_s.scan(PEM_CERT).map { |pem| OpenSSL::X509::Certificate.new(pem) }
    end

    # The URI SANs of a certificate, exactly as encoded.
    #
    # @return [Array<String>]
    def uri_sans(cert)
      ext = cert.extensions.find { |e| e.oid == "subjectAltName" }
      return [] if ext.nil?

      OpenSSL::ASN1.decode(ext.value_der).value.filter_map do |name|
        name.value if name.tag_class == :CONTEXT_SPECIFIC && name.tag == 6
      end.map do |v|
        v.is_a?(Array) ? v.map(&:value).join : v.to_s
      end
    end

    # The one SPIFFE ID of an X509-SVID leaf, or nil when it is not one.
    def spiffe_id_of(cert)
      uris = uri_sans(cert)
      uris.size == 1 && uris.first.start_with?("spiffe://") ? uris.first : nil
    end

    # Parses a chain (leaf first) and checks it is an X509-SVID for +key+ (spec 8.7.4, 8.8.3).
    #
    # @return [X509Identity]
    def parse_identity(chain_pem, key, received_at:)
      chain = parse_pem_certificates(chain_pem)
      raise IdentityError, "secinfra: identity: the certificate chain holds no certificate" if chain.empty?

      leaf = chain.first
      spiffe_id = spiffe_id_of(leaf)
      raise IdentityError, "secinfra: identity: the certificate is not an X509-SVID (one spiffe:// URI SAN)" unless spiffe_id
      unless leaf.public_key.public_to_der == key.public_to_der
        raise IdentityError, "secinfra: identity: the certificate's public key is not the client's key"
      end

      X509Identity.new(spiffe_id: spiffe_id, chain: chain.freeze, key: key,
                       serial: leaf.serial.to_i.to_s(16), not_before: leaf.not_before.utc,
                       not_after: leaf.not_after.utc, issued_at: issued_at(leaf.not_before.utc, received_at))
    end

    # min(received, NotBefore + backdating) (spec 9.1.2).
    def issued_at(not_before, received)
      [received, not_before + NOT_BEFORE_BACKDATING].min
    end
  end

  # One X509-SVID chain together with its private key (spec 1.3): chain and
  # key are only ever read and replaced together. +inspect+ never shows the key.
  class X509Identity
    # @return [String] the SPIFFE ID
    attr_reader :spiffe_id
    # @return [Array<OpenSSL::X509::Certificate>] leaf first
    attr_reader :chain
    # @return [OpenSSL::PKey::EC] the private key (stays in this process)
    attr_reader :key
    # @return [String] the leaf's serial, lower-case hex without leading zeros
    attr_reader :serial
    # @return [Time]
    attr_reader :not_before, :not_after, :issued_at

    def initialize(spiffe_id:, chain:, key:, serial:, not_before:, not_after:, issued_at:)
      @spiffe_id = spiffe_id
      @chain = chain
      @key = key
      @serial = serial
      @not_before = not_before
      @not_after = not_after
      @issued_at = issued_at
      freeze
    end

    # @return [OpenSSL::X509::Certificate]
    def leaf = @chain.first

    # The chain as PEM (leaf first).
    def chain_pem = @chain.map(&:to_pem).join

    # The key as unencrypted PKCS #8 PEM (for a file sink the application asked for).
    def key_pem = @key.private_to_pem

    def inspect
      "#<Secinfra::X509Identity #{@spiffe_id} serial=#{@serial} not_after=#{@not_after.iso8601} key=[REDACTED]>"
    end
    alias to_s inspect
  end
end
