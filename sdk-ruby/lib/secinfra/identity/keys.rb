# frozen_string_literal: true

require "openssl"

module Secinfra
  module Identity
    # The elliptic curve of generated keys (ECDSA P-256, spec 8.2).
    KEY_CURVE = "prime256v1"

    module_function

    # A new ECDSA P-256 key, generated here and kept in memory.
    #
    # @return [OpenSSL::PKey::EC]
    def new_private_key
      OpenSSL::PKey::EC.generate(KEY_CURVE)
    end

    # A PEM CSR signed by +key+, with an empty subject and no extensions.
    #
    # @param key [OpenSSL::PKey::EC]
    # @return [String]
    def build_csr(key)
      csr = OpenSSL::X509::Request.new
      csr.version = 0
      csr.subject = OpenSSL::X509::Name.new
      csr.public_key = key
      csr.sign(key, OpenSSL::Digest.new("SHA256"))
      csr.to_pem
    end
  end
end
