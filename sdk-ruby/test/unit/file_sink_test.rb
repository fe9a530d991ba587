# frozen_string_literal: true

require "test_helper"
require "tmpdir"

class FileSinkTest < Minitest::Test
  # An identity source whose snapshot the test replaces.
  class Source
    attr_accessor :identity, :bundle
  end

  def make_identity
    key = OpenSSL::PKey::EC.generate("prime256v1")
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = rand(1..2**60)
    cert.subject = cert.issuer = OpenSSL::X509::Name.new
    cert.public_key = key
    cert.not_before = Time.now - 60
    cert.not_after = Time.now + 3600
    ef = OpenSSL::X509::ExtensionFactory.new(cert, cert)
    cert.add_extension(ef.create_extension("subjectAltName", "URI:spiffe://secinfra.local/app", false))
    cert.sign(key, OpenSSL::Digest.new("SHA256"))
    [Secinfra::Identity.parse_identity(cert.to_pem, key, received_at: Time.now.utc),
     Secinfra::Identity.load_bundle(cert.to_pem)]
  end

  def test_writes_matching_files_atomically_with_a_private_key_file
    Dir.mktmpdir do |dir|
      old_umask = File.umask(0o000)
      source = Source.new
      source.identity, source.bundle = make_identity
      sink = Secinfra::FileSink.new(source, dir)
      assert sink.write
      cert = OpenSSL::X509::Certificate.new(File.read(File.join(dir, "cert.pem")))
      key = OpenSSL::PKey.read(File.read(File.join(dir, "key.pem")))
      assert_equal cert.public_key.public_to_der, key.public_to_der
      assert_equal 0o600, File.stat(File.join(dir, "key.pem")).mode & 0o777
      assert_equal 0o644, File.stat(File.join(dir, "cert.pem")).mode & 0o777
      assert File.symlink?(File.join(dir, "current"))
      first = File.readlink(File.join(dir, "current"))

      source.identity, source.bundle = make_identity
      assert sink.write
      refute_equal first, File.readlink(File.join(dir, "current"))
      refute File.exist?(File.join(dir, first)), "the old snapshot is removed"
      assert_equal source.identity.serial,
                   OpenSSL::X509::Certificate.new(File.read(File.join(dir, "cert.pem"))).serial.to_i.to_s(16)
      assert_equal 1, Dir.children(dir).count { |c| c.start_with?(".snapshot-") }
    ensure
      File.umask(old_umask) if old_umask
    end
  end

  def test_nothing_is_written_without_an_identity_and_failures_do_not_raise
    Dir.mktmpdir do |dir|
      source = Source.new
      refute Secinfra::FileSink.new(source, dir).write
      assert_empty Dir.children(dir)
      source.identity, source.bundle = make_identity
      File.write(File.join(dir, "blocker"), "")
      quiet = Logger.new(File::NULL)
      refute Secinfra::FileSink.new(source, File.join(dir, "blocker", "sub"), logger: quiet).write
    end
  end
end
