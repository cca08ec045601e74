from django.urls import path

from crm.api import DealDetail, DealList

urlpatterns = [
    path("deals/", DealList.as_view(), name="deal-list"),
    path("deals/<int:pk>/", DealDetail.as_view(), name="deal-detail"),
]
