// Emulated build only: cub::DeviceRadixSort::SortPairs as a stable host sort on the selected key
// bits (signed keys ordered as CUB orders them). The temporary-storage protocol is kept: a first
// call with no storage returns the size, and the second call checks it got that much device
// memory. The sort runs when the stream gets to it (now, or in a launch of a graph it was
// captured into), its arguments taken by value.
#ifndef LRSA_EMU_CUB_RADIX_SORT_CUH
#define LRSA_EMU_CUB_RADIX_SORT_CUH
#include <algorithm>
#include <type_traits>
#include <vector>

#include "lrsa_emu_cuda.h"

namespace cub {
struct DeviceRadixSort {
    template <class K, class V>
    static cudaError_t SortPairs(void *temp, size_t &temp_bytes, const K *keys_in, K *keys_out,
                                 const V *values_in, V *values_out, int n, int begin_bit = 0,
                                 int end_bit = (int)sizeof(K) * 8, cudaStream_t stream = 0) {
        size_t need = (size_t)(n > 0 ? n : 0) * (sizeof(K) + sizeof(V)) + 1024;
        if (!temp) {
            temp_bytes = need;
            return cudaSuccess;
        }
        if (temp_bytes < need || n < 0 || begin_bit < 0 || end_bit > (int)sizeof(K) * 8 ||
            begin_bit >= end_bit)
            return cudaErrorInvalidValue;
        if (n == 0) return cudaSuccess;
        lrsa_emu_check_device_range(temp, need, "cub::DeviceRadixSort temporary storage");
        lrsa_emu_check_device_range(keys_in, sizeof(K) * (size_t)n, "SortPairs keys_in");
        lrsa_emu_check_device_range(keys_out, sizeof(K) * (size_t)n, "SortPairs keys_out");
        lrsa_emu_check_device_range(values_in, sizeof(V) * (size_t)n, "SortPairs values_in");
        lrsa_emu_check_device_range(values_out, sizeof(V) * (size_t)n, "SortPairs values_out");
        auto sort = [=]() {
            typedef typename std::make_unsigned<K>::type U;
            auto bits = [&](K k) {
                U u = (U)k;
                if (std::is_signed<K>::value) u ^= (U)1 << (sizeof(K) * 8 - 1); // as CUB twiddles
                U width_mask = end_bit - begin_bit >= (int)sizeof(U) * 8
                                   ? (U) ~(U)0
                                   : (U)(((U)1 << (end_bit - begin_bit)) - 1);
                return (U)((u >> begin_bit) & width_mask);
            };
            std::vector<int> idx(n);
            for (int i = 0; i < n; i++) idx[i] = i;
            std::stable_sort(idx.begin(), idx.end(),
                             [&](int a, int b) { return bits(keys_in[a]) < bits(keys_in[b]); });
            std::vector<K> k(n);
            std::vector<V> v(n);
            for (int i = 0; i < n; i++) k[i] = keys_in[idx[i]], v[i] = values_in[idx[i]];
            std::copy(k.begin(), k.end(), keys_out);
            std::copy(v.begin(), v.end(), values_out);
        };
        return lrsa_emu::enqueue(stream, sort);
    }
};
} // namespace cub
#endif
