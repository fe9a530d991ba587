# frozen_string_literal: true

require "fileutils"
require "logger"
require "securerandom"

module Secinfra
  # Keeps a client's identity and trust bundle on disk for software that reads
  # files (a sidecar proxy, nginx), as spec 9.9 says. Off unless the
  # application asks for it:
  #
  #   sink = Secinfra::FileSink.attach(client, "/run/secinfra")
  #   # /run/secinfra/cert.pem, key.pem, bundle.pem (symlinks through "current")
  #
  # Each write makes a complete, fsynced snapshot directory and publishes it by
  # renaming a +current+ symlink (the Kubernetes AtomicWriter design), so a
  # reader always finds a matching certificate and key. The key file is 0600
  # from the moment it is created. A write always takes the source's current
  # snapshot (files never go backwards); a failed write is logged and never
  # stops rotation.
  class FileSink
    # The well-known file names.
    CERT_FILE = "cert.pem"
    KEY_FILE = "key.pem"
    BUNDLE_FILE = "bundle.pem"
    CURRENT = "current"
    KEY_MODE = 0o600
    PUBLIC_MODE = 0o644
    SNAPSHOT_PREFIX = ".snapshot-"

    # Writes now and after every rotation event of +client+.
    #
    # @param client [Secinfra::Client]
    # @param directory [String]
    # @return [FileSink]
    def self.attach(client, directory, logger: Logger.new($stderr, level: Logger::WARN))
      sink = new(client.source, directory, logger: logger)
      sink.write
      client.on_rotation { |_event| sink.write }
      sink
    end

    # @param source [#identity, #bundle] the identity source to copy
    # @param directory [String] created (0700) when missing
    def initialize(source, directory, logger: Logger.new($stderr, level: Logger::WARN))
      @source = source
      @directory = File.expand_path(directory)
      @logger = logger
      @lock = Mutex.new
    end

    # Writes the source's current identity and bundle; true when written.
    def write
      @lock.synchronize do
        identity = @source.identity
        bundle = @source.bundle
        return false if identity.nil?

        publish(identity, bundle)
        true
      end
    rescue SystemCallError, IOError => e
      @logger.warn("secinfra: file sink: writing #{@directory} failed: #{e.class}: #{e.message}")
      false
    end

    def inspect = "#<Secinfra::FileSink #{@directory}>"

    private

    def publish(identity, bundle)
      FileUtils.mkdir_p(@directory, mode: 0o700)
      name = "#{SNAPSHOT_PREFIX}#{Time.now.utc.strftime("%Y%m%dT%H%M%S")}-#{SecureRandom.hex(4)}"
      snapshot = File.join(@directory, name)
      Dir.mkdir(snapshot, 0o755)
      write_file(File.join(snapshot, KEY_FILE), identity.key_pem, KEY_MODE)
      write_file(File.join(snapshot, CERT_FILE), identity.chain_pem, PUBLIC_MODE)
      write_file(File.join(snapshot, BUNDLE_FILE), bundle.pem, PUBLIC_MODE)
      sync_dir(snapshot)
      swap_symlink(CURRENT, name)
      [KEY_FILE, CERT_FILE, BUNDLE_FILE].each do |file|
        link = File.join(@directory, file)
        swap_symlink(file, File.join(CURRENT, file)) unless File.symlink?(link) && File.readlink(link) == File.join(CURRENT, file)
      end
      sync_dir(@directory)
      Dir.children(@directory).each do |child|
        next unless child.start_with?(SNAPSHOT_PREFIX) && child != name

        FileUtils.rm_rf(File.join(@directory, child))
      end
    end

    def write_file(path, data, mode)
      File.open(path, File::WRONLY | File::CREAT | File::EXCL, mode) do |f|
        f.chmod(mode) # whatever the umask
        f.write(data)
        f.flush
        f.fsync
      end
    end

    def swap_symlink(name, target)
      tmp = File.join(@directory, ".#{name}.tmp-#{SecureRandom.hex(4)}")
      File.symlink(target, tmp)
      File.rename(tmp, File.join(@directory, name))
    end

    def sync_dir(path)
      File.open(path, File::RDONLY) { |d| d.fsync }
    rescue SystemCallError
      nil # some file systems cannot sync a directory
    end
  end
end
