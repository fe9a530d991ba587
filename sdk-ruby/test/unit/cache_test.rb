# frozen_string_literal: true

require "test_helper"

class CacheTest < Minitest::Test
  CC = Secinfra::Runtime::CacheControl
  Cache = Secinfra::Runtime::ResponseCache

  def setup
    @clock = Secinfra::Testing::FakeClock.new
    @cache = Cache.new(max_entries: 3, clock: @clock)
  end

  def store(key, value, cc, etag: nil, resource: "secret", resource_key: "", revision: nil, generation: nil)
    headers = { "cache-control" => cc }
    headers["etag"] = etag if etag
    @cache.store(key, value, headers, resource: resource, resource_key: resource_key, revision: revision,
                                      generation: generation || @cache.generation(resource))
  end

  def test_cache_control_parsing
    cc = CC.parse("Private, MAX-AGE=\"60\", stale-if-error=300, max-age=5")
    assert_equal 60, cc.max_age, "first occurrence wins; names case-insensitive; quoted values"
    assert_equal 300, cc.stale_if_error
    assert_equal 0, CC.parse("max-age=1.5").max_age
    assert_equal 0, CC.parse("max-age=-1").max_age
    assert_equal 0, CC.parse("no-cache, max-age=60").max_age
    assert_equal 0, CC.parse(nil).max_age
    assert_equal 2_147_483_648, CC.parse("max-age=99999999999999").max_age
    assert CC.parse("no-store").no_store
  end

  def test_fresh_then_stale_then_useless
    store("k", :v, "max-age=10, stale-if-error=5")
    hit = @cache.lookup("k")
    assert hit.fresh
    @clock.advance(10)
    hit = @cache.lookup("k")
    refute hit.fresh
    assert hit.usable_on_error
    @clock.advance(5)
    assert_nil @cache.lookup("k"), "stale, not usable on error and without an ETag: dropped"
  end

  def test_stale_entry_with_etag_is_kept_for_revalidation
    store("k", :v, "max-age=1", etag: '"e1"')
    @clock.advance(100)
    hit = @cache.lookup("k")
    refute hit.fresh
    assert_equal '"e1"', hit.etag
    @cache.refresh("k", { "cache-control" => "max-age=30", "etag" => '"e1"' })
    assert @cache.lookup("k").fresh, "a 304 restarts the age"
  end

  def test_304_with_another_etag_does_not_refresh
    store("k", :v, "max-age=1", etag: '"e1"')
    @clock.advance(5)
    @cache.refresh("k", { "cache-control" => "max-age=30", "etag" => '"e2"' })
    refute @cache.lookup("k").fresh
  end

  def test_useless_answers_are_not_stored_and_no_store_drops
    store("k", :v, "max-age=0")
    assert_nil @cache.lookup("k")
    store("k", :v, "max-age=60")
    store("k", :v2, "no-store, max-age=60")
    assert_nil @cache.lookup("k")
  end

  def test_age_header_counts
    @cache.store("k", :v, { "cache-control" => "max-age=10", "age" => "8", "etag" => "e" }, resource: "secret", resource_key: "",
                                                                            revision: nil, generation: 0)
    assert @cache.lookup("k").fresh
    @clock.advance(2)
    refute @cache.lookup("k").fresh
  end

  def test_lru_eviction
    %w[a b c].each { |k| store(k, k, "max-age=60") }
    @cache.lookup("a") # a is now the most recently used
    store("d", "d", "max-age=60")
    assert_nil @cache.lookup("b")
    %w[a c d].each { |k| refute_nil @cache.lookup(k), k }
    assert_equal 3, @cache.size
  end

  def test_invalidation_by_key_and_family
    store("a", 1, "max-age=60", resource_key: "app/db")
    store("b", 2, "max-age=60", resource_key: "app/other")
    store("c", 3, "max-age=60", resource_key: "")
    @cache.invalidate("secret", "app/db")
    assert_nil @cache.lookup("a")
    refute_nil @cache.lookup("b")
    assert_nil @cache.lookup("c"), "entries without a resource key go too"
    @cache.invalidate_family("secret")
    assert_nil @cache.lookup("b")
  end

  def test_answer_sent_before_an_invalidation_is_not_stored
    generation = @cache.generation("secret")
    @cache.invalidate("secret", "x")
    store("k", :old, "max-age=60", generation: generation)
    assert_nil @cache.lookup("k")
  end

  def test_revision_write_marks
    store("k", :old, "max-age=60", resource: "authz", revision: "00041")
    @cache.record_write_revision("authz", "00042")
    assert_nil @cache.lookup("k"), "an entry older than the mark is bypassed"
    store("k", :older, "max-age=60", resource: "authz", revision: "41")
    assert_nil @cache.lookup("k"), "an answer older than the mark is not stored"
    store("k", :new, "max-age=60", resource: "authz", revision: "42")
    assert_equal :new, @cache.lookup("k").entry.value
    @cache.record_write_revision("authz", "0000000040")
    assert_equal :new, @cache.lookup("k").entry.value, "the highest mark is kept"
    @cache.clear
    store("k", :again, "max-age=60", resource: "authz", revision: "41")
    assert_nil @cache.lookup("k"), "the mark outlives clear"
  end

  def test_revision_ordering
    rev = Secinfra::Runtime::Revision
    assert rev.compare("0010", "9").positive?
    assert rev.compare("00042", "42").zero?
    assert_nil rev.parse("")
    assert_nil rev.parse("12a")
    refute rev.at_least?(nil, "1")
  end

  def test_canonical_cache_keys
    key = Cache.key("s/M", { "b" => 1, "a" => { "z" => [1, "\u00e9"], "y" => nil } })
    assert_equal '{"method":"s/M","request":{"a":{"y":null,"z":[1,"é"]},"b":1}}', key
    assert_equal '{"method":"s/M","request":{"e":"a\\"b\\\\c\\n\\u0001/","f":false,"n":null}}',
                 Cache.key("s/M", { "n" => nil, "f" => false, "e" => "a\"b\\c\n\u0001/" })
    refute_equal Cache.key("m", { "f" => false }), Cache.key("m", { "f" => nil })
    refute_equal Cache.key("m", { "user" => "a#b", "object" => "c" }),
                 Cache.key("m", { "user" => "a", "object" => "b#c" })
  end

  def test_inspect_never_shows_values
    store("k", "hunter2", "max-age=60")
    refute_includes @cache.lookup("k").entry.inspect, "hunter2"
    refute_includes @cache.inspect, "hunter2"
  end

  def test_cache_size_must_be_positive
    assert_raises(ArgumentError) { Cache.new(max_entries: 0) }
  end
end
