# frozen_string_literal: true

require "test_helper"

# The private key made in this process and its CSR (identity/keys.rb).
class KeysTest < Minitest::Test
  Identity = Secinfra::Identity

  def test_csr_has_empty_subject_no_attributes_and_a_valid_signature
    key = Identity.new_private_key
    assert_equal "prime256v1", key.group.curve_name
    pem = Identity.build_csr(key)
    assert pem.start_with?("-----BEGIN CERTIFICATE REQUEST-----")
    csr = OpenSSL::X509::Request.new(pem)
    assert csr.verify(key)
    assert_empty csr.subject.to_a
    assert_empty csr.attributes
    assert_equal key.public_to_der, csr.public_key.public_to_der
    refute_includes pem, key.private_to_pem
  end
end
