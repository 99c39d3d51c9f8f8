// The Wasm core's entry: the module's exports, one block per domain object. Functions used only
// inside the core stay unexported. The host declares the same exports once, as a typed table, in
// src/wasm.ts; keep the two in step (a test compares them).
export {
  heap_alloc,
  heap_free,
  heap_used,
  heap_live,
  heap_alloc_calls,
  heap_fail_nth,
  heap_fail_pending,
  heap_static_end,
} from './heap';
export {
  bitmap_create,
  bitmap_free,
  bitmap_nbits,
  bitmap_words,
  bitmap_set,
  bitmap_set_range,
  bitmap_clear_range,
  bitmap_test,
  bitmap_count,
  bitmap_next_set,
  bitmap_clear,
  bitmap_set_batch,
  bitmap_read,
  bitmap_emit,
  bitmap_or,
  bitmap_convert,
  bitmap_convert_new,
  bitmap_runs,
} from './dirty_bitmap';
export { bitmap_runs_all } from './dirty_bitmap_runs_all';
export {
  tree_create,
  tree_free,
  tree_count,
  tree_insert,
  tree_remove,
  tree_find,
  tree_first,
  tree_collect,
  tree_find_batch,
} from './iova_tree';
export {
  pins_create,
  pins_free,
  pins_clear,
  pins_size,
  pins_count,
  pins_pin_range,
  pins_unpin_range,
  pins_pin_batch,
  pins_unpin_batch,
} from './pin_table';
export { pins_mark, pins_count_range, pins_collect } from './pin_table_scan';
export { um_create, um_free, um_frames, um_write, um_read, um_reserve, um_reserve_ranges } from './user_memory';
export { report_user, report_words } from './report';
export { unit_report } from './unit_report';
export {
  kvm_vm_create,
  kvm_vm_free,
  kvm_slot_overlap,
  kvm_slot_create,
  kvm_slot_delete,
  kvm_slot_update,
  kvm_slot_set_backed,
  kvm_slot_bitmap,
  kvm_slot_find,
  kvm_track_count,
  kvm_track_add,
  kvm_slot_tracked,
} from './kvm_memslot';
export { kvm_ring_create, kvm_ring_free, kvm_ring_mem, kvm_ring_used, kvm_ring_reset } from './kvm_dirty_ring';
export {
  kvm_vcpu_write,
  kvm_vcpu_write_guest,
  kvm_batch_check,
  kvm_vcpu_write_batch,
  kvm_get_log,
  kvm_clear_log,
} from './kvm_vcpu';
export { vmm_stores, vmm_ring_reap, vmm_page_hashes } from './kvm_vmm';
export {
  ioasid_map_create,
  ioasid_map_free,
  ioasid_map_count,
  ioasid_search,
  ioasid_insert,
  ioasid_remove,
  ioasid_record,
  ioasid_collect,
} from './ioasid';
export { sd_create, sd_clear, sd_free, sd_mark, sd_mark_many, sd_read, sd_fill } from './soft_dirty';
