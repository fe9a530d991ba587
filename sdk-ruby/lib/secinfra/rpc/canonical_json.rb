# frozen_string_literal: true

require "json"

module Secinfra
  module RPC
    # Canonical JSON (spec 7.3): members sorted, no whitespace, so that two
    # equal requests give one text and two different ones never do. Written
    # into one buffer: a cache hit computes its key on every call, and
    # JSON.generate per string and number cost most of a hit (issue 19).
    # {Message#write_canonical_json} writes a message's form straight here.
    module CanonicalJson
      # What JSON requires escaped in a string (RFC 8259 section 7): an
      # ASCII string without any of it is its own JSON text between quotes.
      NEEDS_ESCAPE = /[\x00-\x1f"\\]/

      module_function

      # @param value [Hash, Array, String, Numeric, Boolean, nil] a JSON value
      # @return [String]
      def dump(value) = write(+"", value)

      # Appends the canonical JSON of +value+ to +out+; returns +out+.
      def write(out, value)
        case value
        when String then write_string(out, value)
        when Hash then write_object(out, value)
        when Array
          out << "["
          value.each_with_index do |v, i|
            out << "," unless i.zero?
            write(out, v)
          end
          out << "]"
        when Integer then out << value.to_s
        when true then out << "true"
        when false then out << "false"
        when nil then out << "null"
        else out << JSON.generate(value) # floats (NaN refused as before), anything else
        end
      end

      # Members sorted by name (code point order: UTF-8 byte order); names
      # may be Strings or Symbols.
      def write_object(out, hash)
        keys = hash.keys
        if keys.all?(String)
          keys.sort!
        else
          keys.sort_by! { |k| [k.to_s, k.class.name] }
        end
        out << "{"
        keys.each_with_index do |k, i|
          out << "," unless i.zero?
          write_string(out, k.to_s)
          out << ":"
          write(out, hash[k])
        end
        out << "}"
      end

      def write_string(out, text)
        if text.ascii_only? && !NEEDS_ESCAPE.match?(text)
          out << '"' << text << '"'
        else
          out << JSON.generate(text) # escapes, non-ASCII as itself, invalid UTF-8 refused
        end
      end
    end
  end
end
