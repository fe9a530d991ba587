# frozen_string_literal: true

require "base64"
require "json"
require "openssl"

module Secinfra
  module Identity
    # The path of the server's SPIFFE ID in every trust domain.
    SERVER_ID_PATH = "/secinfra/server"

    module_function

    # A trust bundle from PEM CA certificates or a SPIFFE bundle (JWK Set JSON).
    #
    # @param data [String]
    # @return [TrustBundle]
    # @raise [IdentityError] when it does not parse or holds no X.509 authority
    def load_bundle(data)
      text = data.to_s
      return bundle_from_document(JSON.parse(text)) if text.lstrip.start_with?("{")

      certs = parse_pem_certificates(text)
      raise IdentityError, "secinfra: identity: the trust bundle holds no PEM certificate" if certs.empty?

      TrustBundle.new(certs, sequence: 0, refresh_hint: nil)
    rescue JSON::ParserError, OpenSSL::X509::CertificateError => e
      raise IdentityError, "secinfra: identity: the trust bundle does not parse: #{e.message}"
    end

    # A trust bundle from a SPIFFE bundle document (spec 10.1).
    def bundle_from_document(doc)
      raise IdentityError, "secinfra: identity: the trust bundle is not a JSON object" unless doc.is_a?(Hash)

      entries = (doc["keys"] || []).map { |k| [k["use"], k["x5c"]] }
      bundle_from_entries(entries, doc["spiffe_sequence"], doc["spiffe_refresh_hint"])
    end

    # A trust bundle from the GetTrustBundle answer.
    #
    # @param wire [Secinfra::V1::TrustBundle]
    def bundle_from_wire(wire)
      bundle_from_entries(wire.keys.map { |k| [k.use, k.x5c] }, wire.spiffe_sequence, wire.spiffe_refresh_hint)
    end

    def bundle_from_entries(entries, sequence, hint)
      certs = entries.filter_map do |use, x5c|
        next nil unless use == "x509-svid" && x5c.is_a?(Array) && !x5c.empty?

        OpenSSL::X509::Certificate.new(Base64.strict_decode64(x5c.first.to_s))
      end
      raise IdentityError, "secinfra: identity: the trust bundle holds no X.509 authority" if certs.empty?

      TrustBundle.new(certs, sequence: sequence.to_i, refresh_hint: hint.is_a?(Numeric) ? hint.to_f : nil)
    rescue ArgumentError, OpenSSL::X509::CertificateError => e
      raise IdentityError, "secinfra: identity: the trust bundle holds a bad certificate: #{e.message}"
    end

    # +spiffe://<trust domain>/secinfra/server+, from a CA's URI SAN.
    #
    # @raise [IdentityError] when no CA names a trust domain
    def server_id_for(bundle)
      bundle.certificates.each do |cert|
        uri = uri_sans(cert).find { |u| u.start_with?("spiffe://") }
        return uri.chomp("/") + SERVER_ID_PATH if uri
      end
      raise IdentityError, "secinfra: identity: the trust bundle names no SPIFFE trust domain; give server_id"
    end

    # Whether the identity's leaf verifies, through the chain's own
    # intermediates, to a CA of +bundle+ at time +at+ (spec 8.7.4).
    #
    # @param identity [X509Identity]
    # @param bundle [TrustBundle]
    # @param at [Time]
    # @return [Boolean]
    def chains_to?(identity, bundle, at)
      store = bundle.store
      store.time = at
      store.verify(identity.chain.first, identity.chain.drop(1))
    end
  end

  # The CA certificates the client trusts, with the bundle's sequence and refresh hint.
  class TrustBundle
    # @return [Array<OpenSSL::X509::Certificate>]
    attr_reader :certificates
    # @return [Integer] 0 for a PEM bundle
    attr_reader :sequence
    # @return [Float, nil] seconds
    attr_reader :refresh_hint

    def initialize(certificates, sequence:, refresh_hint:)
      @certificates = certificates.freeze
      @sequence = sequence
      @refresh_hint = refresh_hint
      @fingerprint = OpenSSL::Digest::SHA256.hexdigest(certificates.map(&:to_der).sort.join)
      freeze
    end

    # @return [String] a digest of the CA set
    attr_reader :fingerprint

    # The CAs as PEM.
    def pem = @certificates.map(&:to_pem).join

    # A new X509 store trusting exactly these CAs (no system roots).
    #
    # @return [OpenSSL::X509::Store]
    def store
      store = OpenSSL::X509::Store.new
      @certificates.each { |c| store.add_cert(c) }
      store
    end

    def inspect = "#<Secinfra::TrustBundle sequence=#{@sequence} cas=#{@certificates.size}>"
  end
end
